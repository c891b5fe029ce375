-- For every as-of date in the mart, gross revenue summed over customers equals the purchase revenue of the
-- kept lines up to that date, recomputed here from the lines rather than the invoice rollup.
with mart as (

    select
        as_of_date,
        sum(gross_revenue) as gross_revenue,
        sum(returned_value) as returned_value
    from {{ ref('fct_customer_features') }}
    group by as_of_date

),

lines as (

    select
        mart.as_of_date,
        sum(kept.line_revenue) filter (where kept.quantity > 0) as gross_revenue
    from mart
    inner join {{ ref('int_invoice_lines__cleaned') }} as kept
        on mart.as_of_date >= kept.invoice_date
    group by mart.as_of_date

)

select
    mart.as_of_date,
    mart.gross_revenue,
    lines.gross_revenue as lines_gross_revenue
from mart
left join lines on mart.as_of_date = lines.as_of_date
where abs(mart.gross_revenue - coalesce(lines.gross_revenue, 0)) > 0.01
