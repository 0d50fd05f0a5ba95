-- The original admin's PostgreSQL schema as its Ecto migrations leave it (2018-11 to 2019-06),
-- from docs in shared/reference/original-admin-schema.md. For tests and for trying the admin
-- API on an empty database; an operator's real database already has it.
CREATE TABLE regions (
  id bigserial PRIMARY KEY,
  name varchar(255), description text, status varchar(255),
  inserted_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'),
  updated_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'));
CREATE UNIQUE INDEX regions_name_index ON regions (name);

CREATE TABLE subnets (
  id bigserial PRIMARY KEY,
  cidr varchar(255), name varchar(255),
  region_id bigint REFERENCES regions(id) ON DELETE RESTRICT,
  inserted_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'),
  updated_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'));
CREATE UNIQUE INDEX subnets_name_index ON subnets (name);
CREATE UNIQUE INDEX subnets_cidr_index ON subnets (cidr);
CREATE INDEX subnets_region_id_index ON subnets (region_id);

CREATE TABLE server_groups (
  id bigserial PRIMARY KEY,
  name varchar(255), description text, status varchar(255),
  inserted_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'),
  updated_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'));
CREATE UNIQUE INDEX server_groups_name_index ON server_groups (name);

CREATE TABLE servers (
  id bigserial PRIMARY KEY,
  domain_name varchar(255), ip varchar(255), port integer, manage_ip varchar(255),
  manage_port integer, weight integer, prefix varchar(255),
  healthcheck_enabled boolean NOT NULL DEFAULT true, healthcheck_path varchar(255),
  type varchar(255), status varchar(255), availability boolean NOT NULL DEFAULT true,
  inserted_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'),
  updated_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'));
CREATE UNIQUE INDEX servers_domain_name_type_index ON servers (domain_name, type);
CREATE UNIQUE INDEX servers_prefix_index ON servers (prefix);

CREATE TABLE linear_channels (
  id bigserial PRIMARY KEY,
  name varchar(255), code_name varchar(255), description text,
  dvr_enabled boolean NOT NULL DEFAULT false, epg_id varchar(255),
  server_group_id bigint REFERENCES server_groups(id) ON DELETE SET NULL,
  storage_id integer,
  inserted_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'),
  updated_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'));
CREATE UNIQUE INDEX linear_channels_name_index ON linear_channels (name);
CREATE UNIQUE INDEX linear_channels_code_name_index ON linear_channels (code_name);
CREATE UNIQUE INDEX linear_channels_epg_id_index ON linear_channels (epg_id);
CREATE INDEX linear_channels_server_group_id_index ON linear_channels (server_group_id);

CREATE TABLE tv_streams (
  id bigserial PRIMARY KEY,
  stream_path varchar(255), status varchar(255), protocol varchar(255), encryption varchar(255),
  linear_channel_id bigint REFERENCES linear_channels(id) ON DELETE RESTRICT,
  inserted_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'),
  updated_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'));
CREATE UNIQUE INDEX tv_streams_stream_path_index ON tv_streams (stream_path);
CREATE INDEX tv_streams_linear_channel_id_index ON tv_streams (linear_channel_id);

CREATE TABLE programs (
  id bigserial PRIMARY KEY,
  name varchar(255), start_datetime timestamp(0) without time zone,
  end_datetime timestamp(0) without time zone, epg_id varchar(255),
  linear_channel_id bigint REFERENCES linear_channels(id),
  inserted_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'),
  updated_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'));
CREATE UNIQUE INDEX programs_epg_id_index ON programs (epg_id);
CREATE INDEX programs_linear_channel_id_index ON programs (linear_channel_id);

CREATE TABLE program_records (
  id bigserial PRIMARY KEY,
  path varchar(255),
  program_id bigint REFERENCES programs(id),
  server_id bigint REFERENCES servers(id),
  encryption varchar(255) NOT NULL DEFAULT 'NONE', protocol varchar(255), status varchar(255),
  inserted_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'),
  updated_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'));
CREATE UNIQUE INDEX program_records_protocol_encryption_program_id_index
  ON program_records (protocol, encryption, program_id);
CREATE INDEX program_records_program_id_index ON program_records (program_id);
CREATE INDEX program_records_server_id_index ON program_records (server_id);

CREATE TABLE region_server_groups (
  id bigserial PRIMARY KEY,
  region_id bigint REFERENCES regions(id) ON DELETE CASCADE,
  server_group_id bigint REFERENCES server_groups(id) ON DELETE CASCADE,
  inserted_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'),
  updated_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'));
CREATE UNIQUE INDEX region_server_groups_region_id_server_group_id_index
  ON region_server_groups (region_id, server_group_id);
CREATE INDEX region_server_groups_server_group_id_index ON region_server_groups (server_group_id);

CREATE TABLE server_group_servers (
  id bigserial PRIMARY KEY,
  server_group_id bigint REFERENCES server_groups(id),
  server_id bigint REFERENCES servers(id),
  inserted_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'),
  updated_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'));
CREATE UNIQUE INDEX server_group_servers_server_id_server_group_id_index
  ON server_group_servers (server_id, server_group_id);
CREATE INDEX server_group_servers_server_group_id_index ON server_group_servers (server_group_id);

CREATE TABLE users (
  id bigserial PRIMARY KEY,
  email varchar(255), first_name varchar(255), last_name varchar(255),
  password_hash varchar(255), role varchar(255),
  inserted_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'),
  updated_at timestamp(0) without time zone NOT NULL DEFAULT (now() at time zone 'utc'));
CREATE UNIQUE INDEX users_email_index ON users (email);
