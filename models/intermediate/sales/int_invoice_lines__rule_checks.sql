{{
    config(
        materialized='incremental',
        unique_key='batch_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['batch_id']}, {'columns': ['invoice_date']}],
        pre_hook="{{ drop_lines_of_changed_batches() }}",
        post_hook="{{ analyze_table() }}",
    )
}}

{#-
    Every staged line with the first cleaning rule that removes it (null when it is kept).
    Rules are tried in a fixed order so that each removed line is counted by exactly one rule.

    A table built batch by batch: a run checks only the lines of batches loaded since the last build (a new file,
    or one loaded again with --replace); the lines of a replaced or removed batch go first (pre-hook). A change
    to a cleaning rule (vars, seeds) applies to new batches only until `dbt build --full-refresh` rebuilds it.
-#}
with staged_lines as (

    select * from {{ ref('stg_online_retail__invoice_lines') }}

),

load_batches as (

    select * from {{ ref('stg_online_retail__load_batches') }}

),

excluded_countries as (

    select country from {{ ref('excluded_countries') }}

),

new_lines as (

    select
        staged_lines.*,
        load_batches.loaded_at as batch_loaded_at
    from staged_lines
    left join load_batches
        on staged_lines.batch_id = load_batches.batch_id
    {%- if is_incremental() %}
        where load_batches.loaded_at > (select coalesce(max(batch_loaded_at), '-infinity') from {{ this }})
    {%- endif %}

),

checked as (

    select
        new_lines.*,
        case
            when new_lines.is_guest then 'guest_line'
            when new_lines.customer_id in ({{ var('excluded_customer_ids') | join(', ') }})
                then 'excluded_customer'
            when excluded_countries.country is not null then 'excluded_country'
            when new_lines.is_non_product then 'non_product_code'
            when new_lines.unit_price < {{ var('min_unit_price') }} then 'unit_price_below_minimum'
        end as removed_by_rule
    from new_lines
    left join excluded_countries
        on new_lines.country = excluded_countries.country

)

select * from checked
