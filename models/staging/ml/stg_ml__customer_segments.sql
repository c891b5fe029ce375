with source_segments as (

    select * from {{ source('ml', 'customer_segments') }}

),

renamed as (

    select
        customer_id,
        as_of_date,
        run_id,
        segment_id,
        segment_name,
        is_insider,
        program_rank,
        confidence,
        distance_to_centroid,
        map_x,
        map_y
    from source_segments

)

select * from renamed
