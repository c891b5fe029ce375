with source_backtests as (

    select * from {{ source('ml', 'backtests') }}

),

renamed as (

    select
        backtest_id,
        cutoff_date,
        horizon_days,
        rule,
        insider_definition,
        n_customers,
        customer_share,
        future_revenue_share,
        future_revenue_share_low,
        future_revenue_share_high,
        lift,
        precision as top_customer_precision,
        recall as top_customer_recall,
        share_difference_vs_insiders,
        share_difference_low,
        share_difference_high,
        created_at
    from source_backtests

)

select * from renamed
