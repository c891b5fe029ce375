with source_tests as (

    select * from {{ source('ml', 'hypothesis_tests') }}

),

renamed as (

    select
        as_of_date,
        run_id,
        hypothesis_id,
        statement,
        unit,
        insiders_value,
        insiders_value_low,
        insiders_value_high,
        compared_with,
        compared_with_low,
        compared_with_high,
        comparison,
        p_value,
        holds
    from source_tests

)

select * from renamed
