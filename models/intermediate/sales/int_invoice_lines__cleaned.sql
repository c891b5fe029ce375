{#- The lines that pass every cleaning rule: identified customers' product lines at a real price. -#}
with checked_lines as (

    select * from {{ ref('int_invoice_lines__rule_checks') }}

),

kept as (

    select
        invoice_line_id,
        batch_id,
        invoice_no,
        stock_code,
        quantity,
        unit_price,
        invoiced_at,
        invoice_date,
        customer_id,
        country,
        line_revenue,
        is_cancellation,
        is_return
    from checked_lines
    where removed_by_rule is null

)

select * from kept
