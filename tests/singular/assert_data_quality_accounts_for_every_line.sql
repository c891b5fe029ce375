-- Per batch, lines counted by rpt_data_quality (kept + each rule + rejected) equal the lines read from the file,
-- and the revenue it counts equals the revenue of the staged lines. The batches this build loads (every batch
-- when it loads none, macro in_batches_loaded_now): the others' lines and counts have not changed. No row while
-- the report is not built: dbt selects this test with any of its parents (a Spark build of the feature marts alone
-- selects it through the staged lines).
{%- if execute and load_relation(ref('rpt_data_quality')) is none %}
    select null as batch_id
    where false
{%- else %}

with batches as (

    select
        batch_id,
        lines_read
    from {{ ref('stg_online_retail__load_batches') }}
    where {{ in_batches_loaded_now() }}

),

counted as (

    select
        batch_id,
        sum(n_lines) as n_lines,
        sum(line_revenue) as line_revenue
    from {{ ref('rpt_data_quality') }}
    where {{ in_batches_loaded_now() }}
    group by batch_id

),

staged as (

    select
        batch_id,
        sum(line_revenue) as line_revenue
    from {{ ref('stg_online_retail__invoice_lines') }}
    where {{ in_batches_loaded_now() }}
    group by batch_id

)

select
    batches.batch_id,
    batches.lines_read,
    counted.n_lines,
    staged.line_revenue as staged_revenue,
    counted.line_revenue as counted_revenue
from batches
left join counted on batches.batch_id = counted.batch_id
left join staged on batches.batch_id = staged.batch_id
where
    counted.n_lines is distinct from batches.lines_read
    or abs(coalesce(staged.line_revenue, 0) - coalesce(counted.line_revenue, 0)) > 0.01

{%- endif %}
