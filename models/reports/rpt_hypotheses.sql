{{ config(contract={'enforced': true}) }}

{#-
    The seeds' business hypotheses about the Insiders, measured at every as-of date: one row per date and
    hypothesis with its statement, the measured figure, the figure it is compared with, and whether it holds.
-#}

with customer_segments as (

    select * from {{ ref('fct_customer_segments') }}

),

segment_summary as (

    select * from {{ ref('fct_segment_summary') }}

),

base as (

    select
        as_of_date,
        sum(gross_revenue) as gross_revenue,
        sum(n_items) as n_items,
        {{ safe_divide('sum(n_returned_items)', 'sum(n_items)') }} as return_rate,
        percentile_cont(0.5) within group (order by gross_revenue) as median_gross_revenue
    from customer_segments
    group by as_of_date

),

insiders as (

    select
        as_of_date,
        sum(gross_revenue) as gross_revenue,
        sum(n_items) as n_items,
        {{ safe_divide('sum(n_returned_items)', 'sum(n_items)') }} as return_rate,
        percentile_cont(0.5) within group (order by gross_revenue) as median_gross_revenue,
        {{ safe_divide('sum(gross_revenue)', 'sum(n_invoices)') }} as avg_ticket
    from customer_segments
    where is_insider
    group by as_of_date

),

next_segment as (

    select
        as_of_date,
        avg_ticket,
        row_number() over (partition by as_of_date order by mean_gross_revenue desc) as revenue_rank
    from segment_summary
    where not is_insider

),

insider_quartiles as (

    select
        as_of_date,
        gross_revenue,
        ntile(4) over (partition by as_of_date order by gross_revenue desc) as revenue_quartile
    from customer_segments
    where is_insider

),

top_quartile as (

    select
        as_of_date,
        {{ safe_divide('sum(gross_revenue) filter (where revenue_quartile = 1)', 'sum(gross_revenue)') }}
            as revenue_share
    from insider_quartiles
    group by as_of_date

),

h1_revenue_share as (

    select
        base.as_of_date,
        'H1' as hypothesis_id,
        'The Insiders bring more than '
        || round(100 * {{ var('hypothesis_min_insider_revenue_share') }}) || '% of gross revenue.' as statement,
        {{ safe_divide('insiders.gross_revenue', 'base.gross_revenue') }} as measured_value,
        {{ var('hypothesis_min_insider_revenue_share') }} as compared_with,
        'share of gross revenue' as unit,
        '>' as comparison
    from base
    inner join insiders on base.as_of_date = insiders.as_of_date

),

h2_item_share as (

    select
        base.as_of_date,
        'H2' as hypothesis_id,
        'The Insiders buy more than '
        || round(100 * {{ var('hypothesis_min_insider_item_share') }}) || '% of the units sold.' as statement,
        {{ safe_divide('insiders.n_items', 'base.n_items') }} as measured_value,
        {{ var('hypothesis_min_insider_item_share') }} as compared_with,
        'share of units bought' as unit,
        '>' as comparison
    from base
    inner join insiders on base.as_of_date = insiders.as_of_date

),

h3_return_rate as (

    select
        base.as_of_date,
        'H3' as hypothesis_id,
        'The Insiders return a smaller share of the units they buy than the base average.' as statement,
        insiders.return_rate as measured_value,
        base.return_rate as compared_with,
        'units returned per unit bought' as unit,
        '<' as comparison
    from base
    inner join insiders on base.as_of_date = insiders.as_of_date

),

h4_median_uplift as (

    select
        base.as_of_date,
        'H4' as hypothesis_id,
        'The Insiders'' median gross revenue is at least '
        || round(100 * {{ var('hypothesis_min_median_revenue_uplift') }}) || '% above the overall median.'
            as statement,
        {{ safe_divide('insiders.median_gross_revenue', 'base.median_gross_revenue') }} - 1 as measured_value,
        {{ var('hypothesis_min_median_revenue_uplift') }} as compared_with,
        'relative uplift of the median' as unit,
        '>=' as comparison
    from base
    inner join insiders on base.as_of_date = insiders.as_of_date

),

h5_ticket_against_next as (

    select
        insiders.as_of_date,
        'H5' as hypothesis_id,
        'The Insiders'' average ticket is higher than that of the next segment by revenue per customer.'
            as statement,
        insiders.avg_ticket as measured_value,
        next_segment.avg_ticket as compared_with,
        'gross revenue per invoice' as unit,
        '>' as comparison
    from insiders
    inner join next_segment
        on insiders.as_of_date = next_segment.as_of_date and next_segment.revenue_rank = 1

),

h6_top_quartile as (

    select
        as_of_date,
        'H6' as hypothesis_id,
        'The top quarter of the Insiders brings more than '
        || round(100 * {{ var('hypothesis_min_top_quartile_share') }}) || '% of the Insiders'' revenue.'
            as statement,
        revenue_share as measured_value,
        {{ var('hypothesis_min_top_quartile_share') }} as compared_with,
        'share of Insiders'' gross revenue' as unit,
        '>' as comparison
    from top_quartile

),

measured as (

    select * from h1_revenue_share
    union all
    select * from h2_item_share
    union all
    select * from h3_return_rate
    union all
    select * from h4_median_uplift
    union all
    select * from h5_ticket_against_next
    union all
    select * from h6_top_quartile

),

judged as (

    select
        *,
        case comparison
            when '>' then measured_value > compared_with
            when '>=' then measured_value >= compared_with
            when '<' then measured_value < compared_with
        end as holds
    from measured

)

select
    cast(as_of_date as date) as as_of_date,
    cast(hypothesis_id as text) as hypothesis_id,
    cast(statement as text) as statement,
    cast(measured_value as numeric(18, 6)) as measured_value,
    cast(compared_with as numeric(18, 6)) as compared_with,
    cast(unit as text) as unit,
    cast(comparison as text) as comparison,
    cast(holds as boolean) as holds
from judged
