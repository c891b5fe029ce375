with source_batches as (

    {{ load_batches_source() }}

),

renamed as (

    select
        batch_id,
        source_file,
        file_sha256,
        file_format,
        column_layout,
        date_format,
        lines_read,
        lines_loaded,
        lines_duplicate,
        lines_rejected,
        loaded_at
    from source_batches

)

select * from renamed
