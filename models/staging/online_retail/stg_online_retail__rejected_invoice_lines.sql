with source_rejects as (

    {{ rejected_lines_source() }}

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
