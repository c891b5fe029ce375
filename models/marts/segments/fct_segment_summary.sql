{{
    config(
        materialized=materialization_by_load(),
        unique_key='as_of_date',
        incremental_strategy='replace_dates',
        on_schema_change='append_new_columns',
        contract={'enforced': true},
        indexes=[{'columns': ['as_of_date', 'segment_id'], 'unique': true}],
    )
}}

{#-
    One row per as-of date and segment, plus one row for the Insiders program (segment_id -1, is_insider true),
    which need not be one segment: sizes, revenue and shares, expected revenue, means and medians. Shares are of
    the whole base, so the segment rows add up to 1 and the Insiders row stands beside them.

    Built by as-of date on PostgreSQL, like fct_customer_segments: a build summarises the dates whose latest run
    is not the one summarised (macro segment_dates_not_held), every date on a first build. Rebuilt whole, a daily
    run's build grew with every date ever labelled. A table built before run_id was kept (no such column) is
    built whole once, and gains the column (on_schema_change); `insiders` drops such a table first, so that it is
    created with its index (stages.retire_whole_segment_marts).
-#}
-- depends_on: {{ ref('stg_ml__model_runs') }}
{%- set dates_to_build = segment_dates_not_held() %}

with customer_segments as (

    select labelled.*
    from {{ ref('fct_customer_segments') }} as labelled
    {%- if dates_to_build is not none %}
    where {{ in_dates('labelled.as_of_date', dates_to_build) }}
    {%- endif %}

),

rows_to_summarise as (

    select
        *,
        segment_id as summary_id,
        segment_name as summary_name,
        false as is_program_row
    from customer_segments
    union all
    select
        *,
        -1 as summary_id,
        'Insiders' as summary_name,
        true as is_program_row
    from customer_segments
    where is_insider

),

per_segment as (

    select
        as_of_date,
        summary_id as segment_id,
        min(summary_name) as segment_name,
        bool_or(is_program_row) as is_insider,
        -- one run labels a date: the run its rows carry
        min(run_id) as run_id,
        count(*) as n_customers,
        count(*) filter (where is_insider) as n_insiders,
        sum(expected_revenue_90d) as expected_revenue_90d,
        sum(gross_revenue) as gross_revenue,
        sum(net_revenue) as net_revenue,
        sum(returned_value) as returned_value,
        sum(n_invoices) as n_invoices,
        sum(n_items) as n_items,
        sum(n_returned_items) as n_returned_items,
        avg(gross_revenue) as mean_gross_revenue,
        percentile_cont(0.5) within group (order by gross_revenue) as median_gross_revenue,
        avg(recency_days) as mean_recency_days,
        percentile_cont(0.5) within group (order by recency_days) as median_recency_days,
        avg(n_invoices) as mean_invoices,
        percentile_cont(0.5) within group (order by n_invoices) as median_invoices,
        avg(n_items) as mean_items,
        avg(n_distinct_products) as mean_distinct_products,
        avg(avg_basket_size) as mean_basket_size
    from rows_to_summarise
    group by as_of_date, summary_id

),

base_totals as (

    select
        as_of_date,
        count(*) as n_customers,
        sum(gross_revenue) as gross_revenue,
        sum(net_revenue) as net_revenue,
        sum(expected_revenue_90d) as expected_revenue_90d
    from customer_segments
    group by as_of_date

),

with_shares as (

    select
        per_segment.*,
        {{ safe_divide('per_segment.n_customers', 'base_totals.n_customers') }} as customer_share,
        {{ safe_divide('per_segment.gross_revenue', 'base_totals.gross_revenue') }} as gross_revenue_share,
        {{ safe_divide('per_segment.net_revenue', 'base_totals.net_revenue') }} as net_revenue_share,
        {{ safe_divide('per_segment.expected_revenue_90d', 'base_totals.expected_revenue_90d') }}
            as expected_revenue_90d_share,
        {{ safe_divide('per_segment.n_returned_items', 'per_segment.n_items') }} as return_rate,
        {{ safe_divide('per_segment.gross_revenue', 'per_segment.n_invoices') }} as avg_ticket
    from per_segment
    inner join base_totals
        on per_segment.as_of_date = base_totals.as_of_date

)

select
    cast(as_of_date as date) as as_of_date,
    cast(segment_id as integer) as segment_id,
    cast(segment_name as {{ type_text() }}) as segment_name,
    cast(is_insider as boolean) as is_insider,
    cast(n_customers as integer) as n_customers,
    cast(n_insiders as integer) as n_insiders,
    cast(customer_share as numeric(8, 6)) as customer_share,
    cast(gross_revenue as numeric(18, 4)) as gross_revenue,
    cast(gross_revenue_share as numeric(8, 6)) as gross_revenue_share,
    cast(net_revenue as numeric(18, 4)) as net_revenue,
    cast(net_revenue_share as numeric(8, 6)) as net_revenue_share,
    cast(expected_revenue_90d as numeric(18, 4)) as expected_revenue_90d,
    cast(expected_revenue_90d_share as numeric(8, 6)) as expected_revenue_90d_share,
    cast(returned_value as numeric(18, 4)) as returned_value,
    cast(return_rate as numeric(12, 6)) as return_rate,
    cast(avg_ticket as numeric(14, 4)) as avg_ticket,
    cast(mean_gross_revenue as numeric(18, 4)) as mean_gross_revenue,
    cast(median_gross_revenue as numeric(18, 4)) as median_gross_revenue,
    cast(mean_recency_days as numeric(10, 2)) as mean_recency_days,
    cast(median_recency_days as numeric(10, 2)) as median_recency_days,
    cast(mean_invoices as numeric(10, 2)) as mean_invoices,
    cast(median_invoices as numeric(10, 2)) as median_invoices,
    cast(mean_items as numeric(14, 2)) as mean_items,
    cast(mean_distinct_products as numeric(10, 2)) as mean_distinct_products,
    cast(mean_basket_size as numeric(14, 4)) as mean_basket_size,
    cast(run_id as {{ type_text() }}) as run_id
from with_shares
