-- Tables written by the clustering job (`insiders cluster`). dbt declares them as the `ml` source.
create schema if not exists ml;

create table if not exists ml.model_runs (
    run_id text primary key,
    as_of_date date not null,
    mode text not null check (mode in ('fit', 'score')),
    model_run_id text not null,
    created_at timestamptz not null default clock_timestamp(),
    candidate_id text not null,
    n_segments integer not null,
    n_customers integer not null,
    parameters jsonb not null,
    metrics jsonb not null,
    counts jsonb not null,
    stage_seconds jsonb not null,
    artifact_path text not null,
    artifact_sha256 text not null,
    library_versions jsonb not null
);

create table if not exists ml.model_selection (
    run_id text not null references ml.model_runs (run_id) on delete cascade,
    candidate_id text not null,
    embedding text not null,
    algorithm text not null,
    k integer,
    n_segments integer not null,
    smallest_segment_share double precision,
    top_segment_share double precision,
    noise_share double precision,
    silhouette double precision,
    davies_bouldin double precision,
    calinski_harabasz double precision,
    stability double precision,
    fit_seconds double precision,
    eligible boolean not null,
    rejection text not null,
    selected boolean not null,
    primary key (run_id, candidate_id)
);

create table if not exists ml.segment_definitions (
    model_run_id text not null references ml.model_runs (run_id) on delete cascade,
    segment_id integer not null,
    segment_name text not null,
    is_insider boolean not null,
    n_customers_at_fit integer not null,
    profile jsonb not null,
    primary key (model_run_id, segment_id)
);

create table if not exists ml.customer_segments (
    customer_id bigint not null,
    as_of_date date not null,
    run_id text not null references ml.model_runs (run_id),
    segment_id integer not null,
    segment_name text not null,
    is_insider boolean not null,
    confidence double precision not null,
    distance_to_centroid double precision not null,
    map_x double precision not null,
    map_y double precision not null,
    primary key (customer_id, as_of_date)
);

create table if not exists ml.insider_rules (
    as_of_date date not null,
    run_id text not null references ml.model_runs (run_id),
    rule_number integer not null,
    rule_text text not null,
    n_customers integer not null,
    n_insiders integer not null,
    precision double precision not null,
    recall double precision not null,
    tree_accuracy double precision not null,
    primary key (as_of_date, rule_number)
);

-- columns added after the first release of a table: older databases get them here
alter table ml.model_selection add column if not exists top_segment_share double precision;
