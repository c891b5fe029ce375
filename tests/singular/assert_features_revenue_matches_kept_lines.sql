-- For every as-of date this build wrote (every date in the mart when dbt is run by hand), gross revenue summed
-- over customers equals the purchase revenue of the kept lines up to that date, recomputed here from the lines
-- rather than the invoice rollup: the kept lines' revenue counted per batch, less the lines dated after the date.
-- Dates built earlier are history: lines loaded since may be dated before them. No row while the mart is not
-- built: dbt selects this test with any of its parents (building rpt_data_quality alone selects the line counts).
-- the dates built now are insiders' request (control.feature_dates), read by macro as_of_dates_in_control
-- depends_on: {{ source('control', 'feature_dates') }}
{%- if execute and load_relation(ref('fct_customer_features')) is none %}
    select null as as_of_date
    where false
{%- else %}
{#-
    The earliest date checked, written into the statement as a literal: the lines dated after it are then read
    through the index on invoice_date (from a subquery the planner expects a third of the lines, and read all).
-#}
{%- set built_now = as_of_dates_in_control('feature_dates') %}
{%- set earliest_query %}
    select cast(min(checked.as_of_date) as {{ dbt.type_string() }})
    from {{ ref('fct_customer_features') }} as checked
    where {{ built_now }}
{%- endset %}
{%- set earliest = run_query(earliest_query).columns[0].values()[0] if execute else none %}

with mart as (

    select
        as_of_date,
        sum(gross_revenue) as gross_revenue,
        sum(returned_value) as returned_value
    from {{ ref('fct_customer_features') }}
    where {{ built_now }}
    group by as_of_date

),

kept_revenue as (

    -- every kept line's purchase revenue, counted from the lines batch by batch (int_invoice_lines__rule_counts)
    select sum(purchase_revenue) as gross_revenue
    from {{ ref('int_invoice_lines__rule_counts') }}
    where rule = 'kept'

),

later_revenue as (

    -- less the kept lines dated after each date: few for a recent date, read through the index on invoice_date
    select
        mart.as_of_date,
        sum(kept.line_revenue) as gross_revenue
    from mart
    inner join {{ ref('int_invoice_lines__cleaned') }} as kept
        on mart.as_of_date < kept.invoice_date
    where
        kept.quantity > 0
        -- no date to check when the mart has none
        and {{ "kept.invoice_date > cast('" ~ earliest ~ "' as date)" if earliest else '1 = 0' }}
    group by mart.as_of_date

),

lines as (

    select
        mart.as_of_date,
        kept_revenue.gross_revenue - coalesce(later_revenue.gross_revenue, 0) as gross_revenue
    from mart
    cross join kept_revenue
    left join later_revenue on mart.as_of_date = later_revenue.as_of_date

)

select
    mart.as_of_date,
    mart.gross_revenue,
    lines.gross_revenue as lines_gross_revenue
from mart
left join lines on mart.as_of_date = lines.as_of_date
where abs(mart.gross_revenue - coalesce(lines.gross_revenue, 0)) > 0.01

{%- endif %}
