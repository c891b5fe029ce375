{{
    config(
        materialized=materialization_by_load(),
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['batch_id', 'batch_loaded_at']}],
        pre_hook="{{ drop_lines_of_changed_batches(ref('int_invoice_lines__loaded_dates')) }}",
    )
}}

{#-
    Lines and revenue per load batch and cleaning verdict (kept, or the rule that removed them): what
    rpt_data_quality reports, counted once per batch. Built batch by batch like int_invoice_lines__rule_checks:
    a build counts the batches loaded since the last one, and a batch loaded again is counted again.
-#}
{%- set new_batches = batches_not_held(this) %}

with counted as (

    select
        checked_lines.batch_id,
        checked_lines.batch_loaded_at,
        coalesce(checked_lines.removed_by_rule, 'kept') as rule,
        count(*) as n_lines,
        sum(checked_lines.line_revenue) as line_revenue,
        sum(checked_lines.line_revenue) filter (where checked_lines.quantity > 0) as purchase_revenue
    from {{ ref('int_invoice_lines__rule_checks') }} as checked_lines
    -- new batches and batches loaded again (whose earlier counts the pre-hook removes)
    where {{ in_batches('checked_lines.batch_id', new_batches) }}
    group by checked_lines.batch_id, checked_lines.batch_loaded_at, coalesce(checked_lines.removed_by_rule, 'kept')

)

select
    cast(batch_id as bigint) as batch_id,
    batch_loaded_at,
    cast(rule as {{ type_text() }}) as rule,
    cast(n_lines as bigint) as n_lines,
    line_revenue,
    purchase_revenue
from counted
