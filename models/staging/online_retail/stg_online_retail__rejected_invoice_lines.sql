with source_rejects as (

    select * from {{ source('online_retail', 'rejected_invoice_lines') }}

),

renamed as (

    select
        batch_id,
        source_sheet,
        source_line,
        raw_text,
        reason
    from source_rejects

)

select * from renamed
