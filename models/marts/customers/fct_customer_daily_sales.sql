{{
    config(
        materialized=materialization_by_load(),
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[
            {'columns': ['invoice_date']},
            {'columns': ['customer_id', 'invoice_date'], 'unique': true},
            {'columns': ['lines_loaded_through']},
        ],
        pre_hook="{{ delete_changed_invoice_dates(ref('int_invoice_lines__loaded_dates')) }}",
    )
}}

{#-
    One row per customer and invoice date: what each customer bought and returned that day. A table over every
    line loaded, so that backtests and the Insider choice read a horizon's revenue with an index range scan.
    Built by invoice date, as int_customer_days: a build rebuilds only the dates loads changed since the last.
-#}
{%- set changed_dates = changed_invoice_dates(ref('int_invoice_lines__loaded_dates')) %}

with customer_days as (

    select * from {{ ref('int_customer_days') }}
    {%- if is_incremental() %}
        where {{ in_dates('invoice_date', changed_dates) }}
    {%- endif %}

)

select
    cast(customer_id as bigint) as customer_id,
    cast(invoice_date as date) as invoice_date,
    cast(purchase_revenue as numeric(18, 4)) as gross_revenue,
    cast(returned_value as numeric(18, 4)) as returned_value,
    cast(purchase_revenue - returned_value as numeric(18, 4)) as net_revenue,
    cast(has_purchase as boolean) as has_purchase,
    -- the days' stamp, not the log's: days built from invoices that lag behind the log are rebuilt later
    (select max(built.lines_loaded_through) from {{ ref('int_customer_days') }} as built) as lines_loaded_through
from customer_days
