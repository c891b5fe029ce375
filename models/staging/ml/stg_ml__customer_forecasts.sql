with source_forecasts as (

    select * from {{ source('ml', 'customer_forecasts') }}

),

renamed as (

    select
        customer_id,
        as_of_date,
        run_id,
        p_alive,
        expected_purchases_90d,
        expected_revenue_90d,
        expected_revenue_365d
    from source_forecasts

)

select * from renamed
