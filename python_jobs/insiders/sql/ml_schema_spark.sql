-- The tables of ml_schema.sql on Spark (plain Parquet tables in the target's ml schema, spark_ml for the local
-- session): the same names, columns and order, Spark's types (JSON as string, timestamptz as timestamp). Parquet
-- tables have no keys, defaults or deletes: the job checks keys itself, fills created_at, and replaces an as-of
-- date's rows by overwriting that date's partition (the partition column comes last, as Spark stores it).
-- Statements are separated by a line holding only ";" (Spark runs one at a time).

create table if not exists model_runs (
    run_id string,
    as_of_date date,
    mode string,
    model_run_id string,
    created_at timestamp,
    candidate_id string,
    n_segments int,
    n_customers int,
    parameters string,
    metrics string,
    counts string,
    stage_seconds string,
    artifact_path string,
    artifact_sha256 string,
    library_versions string,
    data_cutoff_date date,
    refit_reason string,
    insider_definition string,
    program string,
    limits string
) using parquet
;
create table if not exists model_selection (
    run_id string,
    candidate_id string,
    embedding string,
    algorithm string,
    k int,
    n_segments int,
    smallest_segment_share double,
    top_segment_share double,
    noise_share double,
    silhouette double,
    davies_bouldin double,
    calinski_harabasz double,
    stability double,
    fit_seconds double,
    eligible boolean,
    rejection string,
    selected boolean
) using parquet
;
create table if not exists segment_definitions (
    model_run_id string,
    segment_id int,
    segment_name string,
    is_top_segment boolean,
    n_customers_at_fit int,
    profile string
) using parquet
;
create table if not exists customer_segments (
    customer_id bigint,
    run_id string,
    segment_id int,
    segment_name string,
    is_insider boolean,
    program_rank int,
    confidence double,
    distance_to_centroid double,
    map_x double,
    map_y double,
    as_of_date date
) using parquet partitioned by (as_of_date)
;
create table if not exists insider_rules (
    run_id string,
    rule_number int,
    rule_text string,
    n_customers int,
    n_insiders int,
    precision double,
    recall double,
    tree_accuracy double,
    as_of_date date
) using parquet partitioned by (as_of_date)
;
create table if not exists customer_forecasts (
    customer_id bigint,
    run_id string,
    p_alive double,
    expected_purchases_90d double,
    expected_revenue_90d double,
    expected_revenue_365d double,
    as_of_date date
) using parquet partitioned by (as_of_date)
;
create table if not exists hypothesis_tests (
    run_id string,
    hypothesis_id string,
    statement string,
    unit string,
    insiders_value double,
    insiders_value_low double,
    insiders_value_high double,
    compared_with double,
    compared_with_low double,
    compared_with_high double,
    comparison string,
    p_value double,
    holds boolean,
    as_of_date date
) using parquet partitioned by (as_of_date)
;
create table if not exists backtests (
    backtest_id string,
    horizon_days int,
    rule string,
    insider_definition string,
    n_customers int,
    customer_share double,
    future_revenue_share double,
    future_revenue_share_low double,
    future_revenue_share_high double,
    lift double,
    precision double,
    recall double,
    share_difference_vs_insiders double,
    share_difference_low double,
    share_difference_high double,
    created_at timestamp,
    cutoff_date date
) using parquet partitioned by (cutoff_date)
;
create table if not exists forecast_backtests (
    backtest_id string,
    horizon_days int,
    n_customers int,
    predicted_purchases double,
    actual_purchases double,
    predicted_revenue double,
    actual_revenue double,
    revenue_error_share double,
    purchases_mae double,
    revenue_mae double,
    seconds double,
    created_at timestamp,
    cutoff_date date
) using parquet partitioned by (cutoff_date)
;
-- Spark runs measure the program's inner backtests every run and keep none (nothing there says when a date's
-- features were restated, so a kept measurement could outlive them); the table is declared for the ml source.
create table if not exists inner_backtests (
    cutoff_date date,
    horizon_days int,
    settings_key string,
    candidate string,
    n_customers int,
    future_revenue_share double,
    measured_at timestamp
) using parquet
