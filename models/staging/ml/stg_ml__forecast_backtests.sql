with source_forecast_backtests as (

    select * from {{ source('ml', 'forecast_backtests') }}

),

renamed as (

    select
        backtest_id,
        cutoff_date,
        horizon_days,
        n_customers,
        predicted_purchases,
        actual_purchases,
        predicted_revenue,
        actual_revenue,
        revenue_error_share,
        purchases_mae,
        revenue_mae,
        seconds as backtest_seconds,
        created_at
    from source_forecast_backtests

)

select * from renamed
