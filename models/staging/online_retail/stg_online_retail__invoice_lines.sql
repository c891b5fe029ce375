{#- The loaded lines: raw.invoice_lines on PostgreSQL, the invoice files on Spark (macros/invoice_files.sql). -#}
with source_lines as (

    {{ invoice_lines_source() }}

),

typed as (

    select
        source_lines.batch_id,
        source_lines.source_sheet,
        source_lines.source_line,
        source_lines.invoice_no,
        source_lines.stock_code,
        source_lines.description,
        source_lines.quantity,
        source_lines.unit_price,
        source_lines.invoiced_at,
        cast(source_lines.invoiced_at as date) as invoice_date,
        source_lines.customer_id,
        source_lines.country,
        concat_ws(':', source_lines.batch_id, nullif(source_lines.source_sheet, ''), source_lines.source_line)
            as invoice_line_id,
        source_lines.quantity * source_lines.unit_price as line_revenue,
        source_lines.invoice_no like 'C%' as is_cancellation,
        source_lines.quantity < 0 as is_return,
        source_lines.customer_id is null as is_guest
    from source_lines

)

select * from typed
