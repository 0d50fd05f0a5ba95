//! The kinds the whole router speaks of: route kinds, stream protocols and encryptions.

/// The four kinds of routed request (bounded label values for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Live,
    Catchup,
    Vod,
    Static,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Live => "live",
            RouteKind::Catchup => "catchup",
            RouteKind::Vod => "vod",
            RouteKind::Static => "static",
        }
    }
}

/// Stream protocol; anything else in the data never matches a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Hls = 0,
    Mpd = 1,
}

impl Protocol {
    pub fn from_data(s: Option<&str>) -> Option<Protocol> {
        match s? {
            "HLS" => Some(Protocol::Hls),
            "MPD" => Some(Protocol::Mpd),
            _ => None,
        }
    }
}

/// Content encryption; the discriminant is the slot index in content tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    None = 0,
    Cenc = 1,
    Widevine = 2,
    PlayReady = 3,
}

impl Encryption {
    /// An absent value means `NONE` (the admin database's default).
    pub fn from_data(s: Option<&str>) -> Option<Encryption> {
        match s.unwrap_or("NONE") {
            "NONE" => Some(Encryption::None),
            "CENC" => Some(Encryption::Cenc),
            "WIDEVINE" => Some(Encryption::Widevine),
            "PLAYREADY" => Some(Encryption::PlayReady),
            _ => None,
        }
    }

    /// The encryptions that satisfy a request, in order of preference: `wv` and `pr` fall back
    /// to CENC; NONE and CENC never fall back.
    pub fn acceptable(self) -> &'static [Encryption] {
        match self {
            Encryption::None => &[Encryption::None],
            Encryption::Cenc => &[Encryption::Cenc],
            Encryption::Widevine => &[Encryption::Widevine, Encryption::Cenc],
            Encryption::PlayReady => &[Encryption::PlayReady, Encryption::Cenc],
        }
    }
}
