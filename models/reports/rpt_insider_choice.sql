{{ config(contract={'enforced': true}) }}

{#-
    How the Insiders were chosen at each as-of date: every candidate definition with the share of future
    revenue its top group captured in the inner backtests (cutoffs whose horizons end by the as-of date), and
    the one the run used. The latest run of each date counts.
-#}

with model_runs as (

    select * from {{ ref('stg_ml__model_runs') }}

),

latest_runs as (

    select
        as_of_date,
        run_id,
        insider_definition,
        insider_choice,
        row_number() over (partition by as_of_date order by created_at desc, run_id desc) as run_order
    from model_runs

),

evidence_items as (

    select
        as_of_date,
        run_id,
        insider_definition,
        {{ json_text('insider_choice', 'reason') }} as choice_reason,
        {{ json_array_items('insider_choice', 'evidence') }} as item
    from latest_runs
    where run_order = 1

),

evidence as (

    select
        as_of_date,
        run_id,
        insider_definition,
        choice_reason,
        {{ to_numeric(json_text('item', 'future_revenue_share')) }} as future_revenue_share,
        {{ json_text('item', 'candidate') }} as candidate
    from evidence_items

),

per_candidate as (

    select
        as_of_date,
        candidate,
        min(run_id) as run_id,
        min(choice_reason) as choice_reason,
        bool_or(candidate = insider_definition) as is_chosen,
        count(future_revenue_share) as n_inner_cutoffs,
        avg(future_revenue_share) as mean_future_revenue_share,
        min(future_revenue_share) as min_future_revenue_share,
        max(future_revenue_share) as max_future_revenue_share
    from evidence
    group by as_of_date, candidate

)

select
    cast(as_of_date as date) as as_of_date,
    cast(candidate as {{ type_text() }}) as candidate,
    cast(is_chosen as boolean) as is_chosen,
    cast(n_inner_cutoffs as integer) as n_inner_cutoffs,
    cast(mean_future_revenue_share as numeric(8, 6)) as mean_future_revenue_share,
    cast(min_future_revenue_share as numeric(8, 6)) as min_future_revenue_share,
    cast(max_future_revenue_share as numeric(8, 6)) as max_future_revenue_share,
    cast(choice_reason as {{ type_text() }}) as choice_reason,
    cast(run_id as {{ type_text() }}) as run_id
from per_candidate
