//! Reading the original admin schema with `tokio-postgres`: one connection that `LISTEN`s for
//! the optional triggers' notifications, a cheap fingerprint of the routing tables, and the
//! whole snapshot read in one READ ONLY, REPEATABLE READ transaction.

use super::document::{self as doc, Entities, Id};
use tokio::sync::mpsc;
use tokio_postgres::{Client, IsolationLevel, NoTls, Row};

/// The channel `conf/admin-api/notify.sql` notifies on.
pub const NOTIFY_CHANNEL: &str = "cti_kaltura_routing";

/// The tables a snapshot is read from.
pub const TABLES: [&str; 10] = [
    "regions",
    "subnets",
    "server_groups",
    "servers",
    "linear_channels",
    "tv_streams",
    "programs",
    "program_records",
    "region_server_groups",
    "server_group_servers",
];

/// A live connection and the notifications that arrive on it; `notifications` ends when the
/// connection does.
pub struct Connection {
    pub client: Client,
    pub notifications: mpsc::UnboundedReceiver<String>,
}

/// Connects, starts the connection's driver task and `LISTEN`s on [`NOTIFY_CHANNEL`].
pub async fn connect(config: &tokio_postgres::Config) -> Result<Connection, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (sender, notifications) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if sender.send(n.channel().to_string()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    log::warn!("database connection lost: {e}");
                    return;
                }
                None => return,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
        .await?;
    Ok(Connection {
        client,
        notifications,
    })
}

/// Row count and the sum of the rows' `xmin` (the transaction that wrote each row version)
/// for every routing table: any committed insert, update or delete changes it, and it costs
/// one sequential scan without reading the rows' contents. Measured in `docs/scale-out.md`.
pub fn fingerprint_sql() -> String {
    let parts: Vec<String> = TABLES
        .iter()
        .map(|t| {
            format!("(SELECT count(*)::text || ':' || coalesce(sum(xmin::text::bigint), 0)::text FROM {t})")
        })
        .collect();
    format!("SELECT concat_ws('/', {})", parts.join(", "))
}

pub async fn fingerprint(client: &Client) -> Result<String, tokio_postgres::Error> {
    let row = client.query_one(&fingerprint_sql(), &[]).await?;
    row.try_get(0)
}

/// Whether the optional triggers of `conf/admin-api/notify.sql` are installed.
pub async fn triggers_installed(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'cti_kaltura_routing_%'",
            &[],
        )
        .await?;
    Ok(row.try_get::<_, i64>(0)? > 0)
}

const REGIONS: &str = "SELECT id::bigint, name::text, status::text FROM regions ORDER BY id";
const SUBNETS: &str =
    "SELECT id::bigint, name::text, cidr::text, region_id::bigint FROM subnets ORDER BY id";
const SERVER_GROUPS: &str =
    "SELECT id::bigint, name::text, status::text FROM server_groups ORDER BY id";
const SERVERS: &str = "SELECT id::bigint, type::text, domain_name::text, ip::text, port::bigint, \
     status::text, availability::boolean, weight::bigint, prefix::text, \
     healthcheck_enabled::boolean, healthcheck_path::text FROM servers ORDER BY id";
const LINEAR_CHANNELS: &str = "SELECT id::bigint, epg_id::text, name::text, code_name::text, \
     dvr_enabled::boolean, server_group_id::bigint FROM linear_channels ORDER BY id";
const TV_STREAMS: &str = "SELECT id::bigint, linear_channel_id::bigint, stream_path::text, \
     status::text, protocol::text, encryption::text FROM tv_streams ORDER BY id";
const PROGRAMS: &str = "SELECT id::bigint, linear_channel_id::bigint, epg_id::text, name::text \
     FROM programs ORDER BY id";
const PROGRAM_RECORDS: &str = "SELECT id::bigint, program_id::bigint, server_id::bigint, \
     status::text, protocol::text, encryption::text, path::text FROM program_records ORDER BY id";
const REGION_GROUPS: &str =
    "SELECT region_id::bigint, server_group_id::bigint FROM region_server_groups";
const GROUP_SERVERS: &str =
    "SELECT server_group_id::bigint, server_id::bigint FROM server_group_servers";

/// A join table's rows as `(parent, child)`; either may be NULL.
type Pairs = Vec<(Option<Id>, Option<Id>)>;

fn pairs(rows: Vec<Row>) -> Result<Pairs, tokio_postgres::Error> {
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// One consistent read of everything routing needs, with the fingerprint of the same
/// transaction (so a change committed during the read is seen by the next fingerprint check).
pub async fn read_snapshot(
    client: &mut Client,
) -> Result<(Entities, String), tokio_postgres::Error> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let fingerprint: String = tx.query_one(&fingerprint_sql(), &[]).await?.try_get(0)?;
    let region_groups = doc::group_pairs(pairs(tx.query(REGION_GROUPS, &[]).await?)?);
    let group_servers = doc::group_pairs(pairs(tx.query(GROUP_SERVERS, &[]).await?)?);
    let mut e = Entities::default();
    for r in tx.query(REGIONS, &[]).await? {
        let id: Id = r.try_get(0)?;
        e.regions.push(doc::Region {
            id,
            name: r.try_get(1)?,
            status: doc::status(r.try_get(2)?),
            server_group_ids: region_groups.get(&id).cloned().unwrap_or_default(),
        });
    }
    for r in tx.query(SUBNETS, &[]).await? {
        e.subnets.push(doc::Subnet {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            cidr: r.try_get(2)?,
            region_id: r.try_get(3)?,
        });
    }
    for r in tx.query(SERVER_GROUPS, &[]).await? {
        let id: Id = r.try_get(0)?;
        e.server_groups.push(doc::ServerGroup {
            id,
            name: r.try_get(1)?,
            status: doc::status(r.try_get(2)?),
            server_ids: group_servers.get(&id).cloned().unwrap_or_default(),
        });
    }
    for r in tx.query(SERVERS, &[]).await? {
        e.servers.push(doc::Server {
            id: r.try_get(0)?,
            server_type: doc::server_type(r.try_get(1)?),
            domain_name: r.try_get(2)?,
            ip: r.try_get(3)?,
            port: r.try_get(4)?,
            status: doc::status(r.try_get(5)?),
            availability: r.try_get(6)?,
            weight: r.try_get(7)?,
            prefix: r.try_get(8)?,
            healthcheck_enabled: r.try_get(9)?,
            healthcheck_path: r.try_get(10)?,
        });
    }
    for r in tx.query(LINEAR_CHANNELS, &[]).await? {
        e.linear_channels.push(doc::LinearChannel {
            id: r.try_get(0)?,
            epg_id: r.try_get(1)?,
            name: r.try_get(2)?,
            code_name: r.try_get(3)?,
            dvr_enabled: r.try_get(4)?,
            server_group_id: r.try_get(5)?,
        });
    }
    for r in tx.query(TV_STREAMS, &[]).await? {
        e.tv_streams.push(doc::TvStream {
            id: r.try_get(0)?,
            linear_channel_id: r.try_get(1)?,
            stream_path: r.try_get(2)?,
            status: doc::status(r.try_get(3)?),
            protocol: r.try_get(4)?,
            encryption: r.try_get(5)?,
        });
    }
    for r in tx.query(PROGRAMS, &[]).await? {
        e.programs.push(doc::Program {
            id: r.try_get(0)?,
            linear_channel_id: r.try_get(1)?,
            epg_id: r.try_get(2)?,
            name: r.try_get(3)?,
        });
    }
    for r in tx.query(PROGRAM_RECORDS, &[]).await? {
        let (protocol, encryption) = doc::record_protocol(r.try_get(4)?, r.try_get(5)?);
        e.program_records.push(doc::ProgramRecord {
            id: r.try_get(0)?,
            program_id: r.try_get(1)?,
            server_id: r.try_get(2)?,
            status: doc::record_status(r.try_get(3)?),
            protocol,
            encryption,
            path: r.try_get(6)?,
        });
    }
    tx.commit().await?;
    Ok((e, fingerprint))
}
