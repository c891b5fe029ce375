{{
    config(
        materialized=materialization_by_load(),
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['batch_id', 'batch_loaded_at']}, {'columns': ['invoice_date']}],
        pre_hook="{{ drop_lines_of_changed_batches(ref('int_invoice_lines__loaded_dates')) }}",
        post_hook="{{ analyze_table() }}",
    )
}}

{#-
    Every staged line with the first cleaning rule that removes it (null when it is kept).
    Rules are tried in a fixed order so that each removed line is counted by exactly one rule.

    A table built batch by batch: a run checks only the lines of batches loaded since the last build (a new file,
    or one loaded again with --replace); the lines of a replaced or removed batch go first (pre-hook), so the new
    lines are appended (a delete by batch id, delete+insert, read every line held to find none). A change
    to a cleaning rule (vars, seeds) applies to new batches only until `dbt build --full-refresh` rebuilds it.
    Built after int_invoice_lines__loaded_dates, which its pre-hook reads for the batches loaded again and its
    tests for the loads of this build.
-#}
-- depends_on: {{ ref('int_invoice_lines__loaded_dates') }}
{%- set new_batches = batches_not_held(this) %}

with staged_lines as (

    select * from {{ ref('stg_online_retail__invoice_lines') }}
    where {{ in_batches('batch_id', new_batches) }}

),

load_batches as (

    select * from {{ ref('stg_online_retail__load_batches') }}

),

excluded_countries as (

    select country from {{ ref('excluded_countries') }}

),

non_product_codes as (

    select stock_code from {{ ref('excluded_stock_codes') }}

),

product_flagged_lines as (

    -- the seed's non-product codes are a cleaning rule, so they are matched here and not in staging
    select
        staged_lines.*,
        non_product_codes.stock_code is not null as is_non_product
    from staged_lines
    left join non_product_codes
        on staged_lines.stock_code = non_product_codes.stock_code

),

batches_to_check as (

    -- batches not in the table as loaded now: new ones, and ones loaded again (a new loaded_at), whose earlier
    -- lines the pre-hook removes (macro batches_not_held)
    select
        load_batches.batch_id,
        load_batches.loaded_at
    from load_batches
    where {{ in_batches('load_batches.batch_id', new_batches) }}

),

new_lines as (

    select
        product_flagged_lines.*,
        batches_to_check.loaded_at as batch_loaded_at
    from product_flagged_lines
    inner join batches_to_check
        on product_flagged_lines.batch_id = batches_to_check.batch_id

),

checked as (

    select
        new_lines.*,
        case
            when new_lines.is_guest then 'guest_line'
            when {{ is_in_list('new_lines.customer_id', var('excluded_customer_ids')) }} then 'excluded_customer'
            when excluded_countries.country is not null then 'excluded_country'
            when new_lines.is_non_product then 'non_product_code'
            when new_lines.unit_price < {{ var('min_unit_price') }} then 'unit_price_below_minimum'
        end as removed_by_rule
    from new_lines
    left join excluded_countries
        on new_lines.country = excluded_countries.country

)

select * from checked
