{{
    config(
        materialized=materialization_by_load(),
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['batch_id']}, {'columns': ['batch_loaded_at']}, {'columns': ['logged_by_invocation']}],
    )
}}

{#-
    A log of the invoice dates each load brought lines for: one row per load batch as loaded at one time and
    invoice date. Rows are only added, never removed: when a file is loaded again (--replace) the dates of its
    earlier version stay beside the new ones, so that the models rebuilt by invoice date (int_customer_invoices,
    fct_customer_daily_sales) know every date a load changed, the dates a replaced file no longer has included
    (macro changed_invoice_dates). Built before the line checks, so that their tests can check only the lines
    of the loads this build logged (macro get_where_subquery).
-#}
{%- set new_batches = batches_not_held(this) %}

with loads_to_log as (

    -- the batches as loaded now that are not logged yet
    select
        load_batches.batch_id,
        load_batches.loaded_at as batch_loaded_at
    from {{ ref('stg_online_retail__load_batches') }} as load_batches
    where {{ in_batches('load_batches.batch_id', new_batches) }}

),

lines_by_date as (

    select
        staged_lines.batch_id,
        staged_lines.invoice_date,
        count(*) as n_lines
    from {{ ref('stg_online_retail__invoice_lines') }} as staged_lines
    where {{ in_batches('staged_lines.batch_id', new_batches) }}
    group by staged_lines.batch_id, staged_lines.invoice_date

),

logged as (

    -- a load without lines gets one row without a date, so that the dates of its earlier version are found
    select
        loads_to_log.batch_id,
        loads_to_log.batch_loaded_at,
        lines_by_date.invoice_date,
        coalesce(lines_by_date.n_lines, 0) as n_lines
    from loads_to_log
    left join lines_by_date
        on loads_to_log.batch_id = lines_by_date.batch_id

)

select
    cast(batch_id as bigint) as batch_id,
    batch_loaded_at,
    cast(invoice_date as date) as invoice_date,
    cast(n_lines as bigint) as n_lines,
    cast('{{ invocation_id }}' as {{ type_text() }}) as logged_by_invocation
from logged
