{{ config(contract={'enforced': true}) }}

{#-
    How well each rule picked the customers who brought the most revenue after a past cutoff: one row per cutoff,
    horizon and rule (`insiders backtest`), groups of the Insiders' size, with intervals and the paired
    difference with the product's own Insiders. The forecast's accuracy at the same cutoff sits on every row.
-#}

with backtests as (

    select * from {{ ref('stg_ml__backtests') }}

),

forecast_backtests as (

    select * from {{ ref('stg_ml__forecast_backtests') }}

),

joined as (

    select
        backtests.*,
        forecast_backtests.predicted_revenue as forecast_predicted_revenue,
        forecast_backtests.actual_revenue as forecast_actual_revenue,
        forecast_backtests.revenue_error_share as forecast_revenue_error_share,
        rank() over (
            partition by backtests.cutoff_date, backtests.horizon_days
            order by backtests.future_revenue_share desc
        ) as rule_rank
    from backtests
    left join forecast_backtests
        on
            backtests.cutoff_date = forecast_backtests.cutoff_date
            and backtests.horizon_days = forecast_backtests.horizon_days

)

select
    cast(cutoff_date as date) as cutoff_date,
    cast(horizon_days as integer) as horizon_days,
    cast(rule as {{ type_text() }}) as rule,
    cast(insider_definition as {{ type_text() }}) as insider_definition,
    cast(n_customers as integer) as n_customers,
    cast(customer_share as numeric(8, 6)) as customer_share,
    cast(future_revenue_share as numeric(8, 6)) as future_revenue_share,
    cast(future_revenue_share_low as numeric(8, 6)) as future_revenue_share_low,
    cast(future_revenue_share_high as numeric(8, 6)) as future_revenue_share_high,
    cast(lift as numeric(10, 4)) as lift,
    cast(top_customer_precision as numeric(8, 6)) as top_customer_precision,
    cast(top_customer_recall as numeric(8, 6)) as top_customer_recall,
    cast(share_difference_vs_insiders as numeric(8, 6)) as share_difference_vs_insiders,
    cast(share_difference_low as numeric(8, 6)) as share_difference_low,
    cast(share_difference_high as numeric(8, 6)) as share_difference_high,
    cast(rule_rank as integer) as rule_rank,
    cast(forecast_predicted_revenue as numeric(18, 2)) as forecast_predicted_revenue,
    cast(forecast_actual_revenue as numeric(18, 2)) as forecast_actual_revenue,
    cast(forecast_revenue_error_share as numeric(8, 6)) as forecast_revenue_error_share,
    cast(created_at as {{ type_timestamp() }}) as created_at
from joined
