{{
    config(
        materialized=materialization_by_load(),
        unique_key='from_as_of_date',
        incremental_strategy='replace_dates',
        on_schema_change='append_new_columns',
        contract={'enforced': true},
        indexes=[{'columns': ['from_as_of_date']}],
    )
}}

{#-
    One row per pair of consecutive as-of dates, (from segment, to segment) and (Insider before, Insider after): how
    many customers moved and the revenue they brought in between. The Insiders are a customer flag that cuts across
    segments, so it is part of the grain: a move counts as entering the Insiders only for the customers who did.
    Customers absent at the earlier date come from segment 0 "(new customers)"; customers absent at the later date
    go to segment 0 "(left the base)". So, per date pair, the customers leaving each segment add up to its size at
    the earlier date, and those arriving to its size at the later one. Period revenue is what the customers bought
    between the two dates: later minus earlier cumulative revenue; all of it for a new customer; 0 for a customer
    who left the base (no later figure, so nothing bought that the later date counts).

    Built by pair of dates on PostgreSQL: a build writes the pairs it does not hold with both dates' latest runs
    (macro segment_date_pairs_not_held; a pair's rows carry its two runs), every pair on a first build, and
    replaces the rows of the same earlier date. Rebuilt whole, a daily run's build grew with every date labelled.
    A table built before the runs were kept (no such columns) is built whole once, and gains the columns;
    `insiders` drops such a table first, so that it is created with its index (stages.retire_whole_segment_marts).
-#}
-- depends_on: {{ ref('stg_ml__model_runs') }}
{%- set pairs_to_build = segment_date_pairs_not_held() %}
{%- set dates_of_pairs = (pairs_to_build or []) | sum(start=[]) | unique | list %}

with customer_segments as (

    select labelled.*
    from {{ ref('fct_customer_segments') }} as labelled
    {%- if pairs_to_build is not none %}
    where {{ in_dates('labelled.as_of_date', dates_of_pairs) }}
    {%- endif %}

),

dated_runs as (

    -- a run labels a date: every row of the date carries it
    select
        as_of_date,
        min(run_id) as run_id
    from customer_segments
    group by as_of_date

),

consecutive_dates as (

    -- on a build by pairs, the dates read are those of the pairs to build: a date that begins one is followed by
    -- its true next date, which is read too, and nothing lies between them
    select
        as_of_date as from_as_of_date,
        lead(as_of_date) over (order by as_of_date) as to_as_of_date
    from dated_runs

),

date_pairs as (

    select
        consecutive_dates.from_as_of_date,
        consecutive_dates.to_as_of_date,
        from_runs.run_id as from_run_id,
        to_runs.run_id as to_run_id
    from consecutive_dates
    inner join dated_runs as from_runs
        on consecutive_dates.from_as_of_date = from_runs.as_of_date
    inner join dated_runs as to_runs
        on consecutive_dates.to_as_of_date = to_runs.as_of_date
    {%- if pairs_to_build is not none %}
    where {{ in_dates('consecutive_dates.from_as_of_date', pairs_to_build | map('first') | list) }}
    {%- endif %}

),

moves as (

    select
        date_pairs.from_as_of_date,
        date_pairs.to_as_of_date,
        date_pairs.from_run_id,
        date_pairs.to_run_id,
        coalesce(earlier.segment_id, 0) as from_segment_id,
        coalesce(earlier.segment_name, '(new customers)') as from_segment_name,
        coalesce(earlier.is_insider, false) as from_insiders,
        coalesce(later.segment_id, 0) as to_segment_id,
        coalesce(later.segment_name, '(left the base)') as to_segment_name,
        coalesce(later.is_insider, false) as to_insiders,
        -- a customer who left the base has no later figure: nothing bought in the period is counted
        case
            when later.customer_id is null then 0
            else later.gross_revenue - earlier.gross_revenue
        end as period_gross_revenue
    from date_pairs
    inner join customer_segments as earlier
        on date_pairs.from_as_of_date = earlier.as_of_date
    left join customer_segments as later
        on
            date_pairs.to_as_of_date = later.as_of_date
            and earlier.customer_id = later.customer_id

),

new_customers as (

    select
        date_pairs.from_as_of_date,
        date_pairs.to_as_of_date,
        date_pairs.from_run_id,
        date_pairs.to_run_id,
        0 as from_segment_id,
        '(new customers)' as from_segment_name,
        false as from_insiders,
        later.segment_id as to_segment_id,
        later.segment_name as to_segment_name,
        later.is_insider as to_insiders,
        later.gross_revenue as period_gross_revenue
    from date_pairs
    inner join customer_segments as later
        on date_pairs.to_as_of_date = later.as_of_date
    left join customer_segments as earlier
        on
            date_pairs.from_as_of_date = earlier.as_of_date
            and later.customer_id = earlier.customer_id
    where earlier.customer_id is null

),

all_moves as (

    select * from moves
    union all
    select * from new_customers

),

counted as (

    select
        from_as_of_date,
        to_as_of_date,
        from_run_id,
        to_run_id,
        from_segment_id,
        from_segment_name,
        to_segment_id,
        to_segment_name,
        from_insiders,
        to_insiders,
        count(*) as n_customers,
        sum(period_gross_revenue) as period_gross_revenue
    from all_moves
    group by
        from_as_of_date, to_as_of_date, from_run_id, to_run_id, from_segment_id, from_segment_name, to_segment_id,
        to_segment_name, from_insiders, to_insiders

)

select
    cast(from_as_of_date as date) as from_as_of_date,
    cast(to_as_of_date as date) as to_as_of_date,
    cast(from_segment_id as integer) as from_segment_id,
    cast(from_segment_name as {{ type_text() }}) as from_segment_name,
    cast(to_segment_id as integer) as to_segment_id,
    cast(to_segment_name as {{ type_text() }}) as to_segment_name,
    cast(from_insiders as boolean) as from_is_insider,
    cast(to_insiders as boolean) as to_is_insider,
    cast(to_insiders and not from_insiders as boolean) as is_entering_insiders,
    cast(from_insiders and not to_insiders as boolean) as is_leaving_insiders,
    cast(n_customers as integer) as n_customers,
    cast(period_gross_revenue as numeric(18, 4)) as period_gross_revenue,
    cast(from_run_id as {{ type_text() }}) as from_run_id,
    cast(to_run_id as {{ type_text() }}) as to_run_id
from counted
