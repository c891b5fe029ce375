-- Tables written by the clustering job (`insiders cluster`), in the target's ml schema. dbt declares them as the
-- `ml` source.

create table if not exists model_runs (
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
    library_versions jsonb not null,
    data_cutoff_date date not null,
    refit_reason text not null default '',
    insider_definition text not null,
    program jsonb not null,
    limits jsonb not null
);

create table if not exists model_selection (
    run_id text not null references model_runs (run_id) on delete cascade,
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

create table if not exists segment_definitions (
    model_run_id text not null references model_runs (run_id) on delete cascade,
    segment_id integer not null,
    segment_name text not null,
    is_top_segment boolean not null,
    n_customers_at_fit integer not null,
    profile jsonb not null,
    primary key (model_run_id, segment_id)
);

-- The two tables of one row per customer have no foreign key to model_runs: PostgreSQL checks one with a query per
-- row, 0.3 s of each 90,000-row write at 10 million lines. A run writes its record and its rows in one transaction
-- (the rows checked to carry its id as they are written: warehouse.run_tables), nothing deletes a run, and dbt
-- tests the relationship (stg_ml__customer_segments, stg_ml__customer_forecasts: run_id) for the dates whose latest
-- run changed since the segment marts were built.
create table if not exists customer_segments (
    customer_id bigint not null,
    as_of_date date not null,
    run_id text not null,
    segment_id integer not null,
    segment_name text not null,
    is_insider boolean not null,
    program_rank integer not null,
    confidence double precision not null,
    distance_to_centroid double precision not null,
    map_x double precision not null,
    map_y double precision not null,
    primary key (customer_id, as_of_date)
);

create table if not exists insider_rules (
    as_of_date date not null,
    run_id text not null references model_runs (run_id),
    rule_number integer not null,
    rule_text text not null,
    n_customers integer not null,
    n_insiders integer not null,
    precision double precision not null,
    recall double precision not null,
    tree_accuracy double precision not null,
    primary key (as_of_date, rule_number)
);

create table if not exists customer_forecasts (
    customer_id bigint not null,
    as_of_date date not null,
    run_id text not null,
    p_alive double precision not null,
    expected_purchases_90d double precision not null,
    expected_revenue_90d double precision not null,
    expected_revenue_365d double precision not null,
    primary key (customer_id, as_of_date)
);

-- A run replaces its date's rows, and the segment marts and their tests read the dates labelled since their last
-- build: by date, through these indexes (the primary keys lead with the customer), so that a day's run does not
-- read every date ever labelled, 90,000 rows more a day at 10 million lines.
create index if not exists customer_segments_as_of_date on customer_segments (as_of_date);
create index if not exists customer_forecasts_as_of_date on customer_forecasts (as_of_date);

-- written by `insiders backtest`: one row per cutoff, horizon and rule
create table if not exists backtests (
    backtest_id text not null,
    cutoff_date date not null,
    horizon_days integer not null,
    rule text not null,
    insider_definition text not null,
    n_customers integer not null,
    customer_share double precision not null,
    future_revenue_share double precision not null,
    future_revenue_share_low double precision not null,
    future_revenue_share_high double precision not null,
    lift double precision not null,
    precision double precision,
    recall double precision,
    share_difference_vs_insiders double precision not null,
    share_difference_low double precision not null,
    share_difference_high double precision not null,
    created_at timestamptz not null default clock_timestamp(),
    primary key (cutoff_date, horizon_days, rule)
);

-- the forecast against what happened, one row per backtest cutoff and horizon
create table if not exists forecast_backtests (
    backtest_id text not null,
    cutoff_date date not null,
    horizon_days integer not null,
    n_customers integer not null,
    predicted_purchases double precision not null,
    actual_purchases double precision not null,
    predicted_revenue double precision not null,
    actual_revenue double precision not null,
    revenue_error_share double precision not null,
    purchases_mae double precision not null,
    revenue_mae double precision not null,
    seconds double precision not null,
    created_at timestamptz not null default clock_timestamp(),
    primary key (cutoff_date, horizon_days)
);

-- the seeds' hypotheses, Insiders against the other customers, with intervals
create table if not exists hypothesis_tests (
    as_of_date date not null,
    run_id text not null references model_runs (run_id),
    hypothesis_id text not null,
    statement text not null,
    unit text not null,
    insiders_value double precision,
    insiders_value_low double precision,
    insiders_value_high double precision,
    compared_with double precision,
    compared_with_low double precision,
    compared_with_high double precision,
    comparison text not null,
    p_value double precision,
    holds boolean not null,
    primary key (as_of_date, hypothesis_id)
);

-- columns added after the first release of a table: older databases get them here
alter table model_selection add column if not exists top_segment_share double precision;
alter table model_runs add column if not exists data_cutoff_date date;
update model_runs as runs set data_cutoff_date = fits.as_of_date
from model_runs as fits where runs.data_cutoff_date is null and fits.run_id = runs.model_run_id;
alter table model_runs add column if not exists refit_reason text not null default '';
alter table model_runs add column if not exists insider_definition text not null default 'top_segment';
alter table model_runs add column if not exists program jsonb not null default '{}';
alter table model_runs add column if not exists limits jsonb not null default '{}';
alter table customer_segments add column if not exists program_rank integer;
do $$
begin
    -- the per-customer tables' foreign keys of earlier releases (above: dbt tests the relationship instead),
    -- looked up first: an alter would lock the tables at every write even with nothing to drop
    if exists (select from pg_constraint
               where conrelid = 'customer_segments'::regclass and conname = 'customer_segments_run_id_fkey') then
        alter table customer_segments drop constraint customer_segments_run_id_fkey;
    end if;
    if exists (select from pg_constraint
               where conrelid = 'customer_forecasts'::regclass and conname = 'customer_forecasts_run_id_fkey') then
        alter table customer_forecasts drop constraint customer_forecasts_run_id_fkey;
    end if;
    if exists (select from information_schema.columns
               where table_schema = current_schema() and table_name = 'segment_definitions' and column_name = 'is_insider') then
        alter table segment_definitions rename column is_insider to is_top_segment;
    end if;
end
$$;

-- The inner backtests the Insider choice reads, measured once per cutoff and settings and reused by every later
-- run: a cutoff's horizon ends by the as-of dates that read it. Kept only once the horizon is all loaded; removed
-- when the cutoff's features are restated.
create table if not exists inner_backtests (
    cutoff_date date not null,
    horizon_days integer not null,
    settings_key text not null,
    candidate text not null,
    n_customers integer not null,
    future_revenue_share double precision,
    measured_at timestamptz not null default now(),
    primary key (cutoff_date, horizon_days, settings_key, candidate)
);

-- The spend forecast's revenue calibration of a window (forecast from its start, judged on its horizon): the same
-- for every as-of date whose window starts there (a month-end), so measured once and reused like the inner
-- backtests. Kept only once the horizon is all loaded; removed when the window start's features are restated.
create table if not exists forecast_calibrations (
    window_start date not null,
    horizon_days integer not null,
    factor double precision not null,
    measured_at timestamptz not null default now(),
    primary key (window_start, horizon_days)
);
