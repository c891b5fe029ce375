{{
    config(
        materialized=materialization_by_load(),
        unique_key='as_of_date',
        incremental_strategy='replace_dates',
        on_schema_change='fail',
        contract={'enforced': true},
        indexes=[{'columns': ['as_of_date', 'customer_id'], 'unique': true}, {'columns': ['customer_id']}],
    )
}}

{#-
    One row per customer per as-of date: the segment history, with the features the summaries read. Built by
    as-of date on PostgreSQL: a build writes the dates whose latest run (ml.model_runs; a run replaces its date's
    labels) is not the one held, every date on a first build; rebuilt whole, a day's build grew with every date
    ever labelled.

    On an incremental build the dates are queried when the model runs and written in as literals (macro
    segment_dates_not_held), so that PostgreSQL reads those dates' features through the mart's index: joined to
    a subquery of dates, it read every date's features (536,000 rows with two dates labelled, 0.8 s), a cost that
    grew with every date built.
-#}
-- depends_on: {{ ref('stg_ml__model_runs') }}
{%- set dates_to_build = segment_dates_not_held() %}
{%- set date_is_to_build = in_dates('as_of_date', dates_to_build) if dates_to_build is not none else '1 = 1' %}

with segments as (

    select labels.*
    from {{ ref('stg_ml__customer_segments') }} as labels
    where {{ date_is_to_build }}

),

features as (

    select dated_features.*
    from {{ ref('fct_customer_features') }} as dated_features
    where {{ date_is_to_build }}

),

forecasts as (

    select dated_forecasts.*
    from {{ ref('stg_ml__customer_forecasts') }} as dated_forecasts
    where {{ date_is_to_build }}

),

joined as (

    select
        segments.customer_id,
        segments.as_of_date,
        segments.segment_id,
        segments.segment_name,
        segments.is_insider,
        segments.program_rank,
        segments.confidence,
        segments.map_x,
        segments.map_y,
        segments.run_id,
        features.gross_revenue,
        features.net_revenue,
        features.returned_value,
        features.n_invoices,
        features.n_items,
        features.n_returned_items,
        features.n_distinct_products,
        features.recency_days,
        features.avg_ticket,
        features.avg_basket_size,
        forecasts.p_alive,
        forecasts.expected_revenue_90d,
        forecasts.expected_revenue_365d
    from segments
    inner join features
        on
            segments.customer_id = features.customer_id
            and segments.as_of_date = features.as_of_date
    left join forecasts
        on
            segments.customer_id = forecasts.customer_id
            and segments.as_of_date = forecasts.as_of_date

)

select
    cast(customer_id as bigint) as customer_id,
    cast(as_of_date as date) as as_of_date,
    cast(segment_id as integer) as segment_id,
    cast(segment_name as {{ type_text() }}) as segment_name,
    cast(is_insider as boolean) as is_insider,
    cast(program_rank as integer) as program_rank,
    cast(confidence as {{ type_double() }}) as confidence,
    cast(map_x as {{ type_double() }}) as map_x,
    cast(map_y as {{ type_double() }}) as map_y,
    cast(run_id as {{ type_text() }}) as run_id,
    cast(gross_revenue as numeric(18, 4)) as gross_revenue,
    cast(net_revenue as numeric(18, 4)) as net_revenue,
    cast(returned_value as numeric(18, 4)) as returned_value,
    cast(n_invoices as integer) as n_invoices,
    cast(n_items as bigint) as n_items,
    cast(n_returned_items as bigint) as n_returned_items,
    cast(n_distinct_products as integer) as n_distinct_products,
    cast(recency_days as integer) as recency_days,
    cast(avg_ticket as numeric(14, 4)) as avg_ticket,
    cast(avg_basket_size as numeric(14, 4)) as avg_basket_size,
    cast(p_alive as {{ type_double() }}) as p_alive,
    cast(expected_revenue_90d as numeric(18, 4)) as expected_revenue_90d,
    cast(expected_revenue_365d as numeric(18, 4)) as expected_revenue_365d
from joined
