{{
    config(
        materialized='incremental',
        unique_key='as_of_date',
        incremental_strategy=replace_dates_strategy(),
        partition_by=['as_of_date'],
        on_schema_change='fail',
        contract={'enforced': true},
        indexes=[{'columns': ['as_of_date', 'customer_id'], 'unique': true}],
        full_refresh=none if var('allow_history_full_refresh', false) else false,
    )
}}

{#-
    One row per customer per as-of date. Building for some as-of dates (one statement for all of them: a spine of
    dates joined to the customer-days) replaces those dates' rows and keeps every other date, so monthly runs
    accumulate a history and backtests can rebuild any cutoff. Every figure at a date uses only lines dated on or
    before it. `--full-refresh` leaves this history alone (it would keep only the dates of that build) unless the
    var allow_history_full_refresh is true; restating some dates is a build for those dates (README, "Restating").
-#}

with as_of_spine as (

    select requested.as_of_date
    from ({{ as_of_dates() }}) as requested

),

customer_days_until_as_of as (

    -- one row per as-of date, customer and invoice day up to it: each day's invoices were summed once, when the
    -- day was loaded (int_customer_days), so the lifetime and window figures below add days up
    select
        customer_days.*,
        as_of_spine.as_of_date,
        {{ dbt.datediff('customer_days.invoice_date', 'as_of_spine.as_of_date', 'day') }}
            as age_days
    from {{ ref('int_customer_days') }} as customer_days
    inner join as_of_spine
        on customer_days.invoice_date <= as_of_spine.as_of_date

),

purchase_invoices_until_as_of as (

    select
        as_of_spine.as_of_date,
        customer_invoices.customer_id,
        customer_invoices.country
    from {{ ref('int_customer_invoices') }} as customer_invoices
    inner join as_of_spine
        on customer_invoices.invoice_date <= as_of_spine.as_of_date
    where customer_invoices.has_purchase

),

new_products as (

    -- one row per customer and day on which the customer first bought some products, with how many, so that
    -- every as-of date adds up these days instead of re-reading every line (or every product bought) up to it
    select * from {{ ref('int_customer_new_products') }}

),

products_until_as_of as (

    select
        as_of_spine.as_of_date,
        new_products.customer_id,
        sum(new_products.n_new_products) as n_distinct_products
    from new_products
    inner join as_of_spine
        on new_products.first_bought_on <= as_of_spine.as_of_date
    group by as_of_spine.as_of_date, new_products.customer_id

),

country_ranked as (

    select
        as_of_date,
        customer_id,
        country,
        row_number() over (partition by as_of_date, customer_id order by count(*) desc, country) as country_rank
    from purchase_invoices_until_as_of
    group by as_of_date, customer_id, country

),

per_customer as (

    select
        as_of_date,
        customer_id,
        min(invoice_date) filter (where has_purchase) as first_purchase_date,
        max(invoice_date) filter (where has_purchase) as last_purchase_date,
        sum(n_purchase_invoices) as n_invoices,
        count(*) filter (where has_purchase) as n_purchase_days,
        sum(purchase_revenue) as gross_revenue,
        sum(returned_value) as returned_value,
        sum(purchased_items) as n_items,
        sum(purchase_lines) as n_lines,
        -- the mean over purchase invoices of their distinct products
        {{ safe_divide('sum(distinct_products_purchased)', 'sum(n_purchase_invoices)') }} as avg_unique_basket_size,
        sum(returned_items) as n_returned_items,
        sum(n_return_invoices) as n_return_invoices,
        -- trailing windows: the same figure means the same thing at every as-of date, whatever the data's age
        coalesce(sum(purchase_revenue) filter (where age_days < 90), 0) as gross_revenue_90d,
        coalesce(sum(purchase_revenue) filter (where age_days < 365), 0) as gross_revenue_365d,
        coalesce(sum(returned_value) filter (where age_days < 90), 0) as returned_value_90d,
        coalesce(sum(returned_value) filter (where age_days < 365), 0) as returned_value_365d,
        count(*) filter (where has_purchase and age_days < 90) as n_purchase_days_90d,
        count(*) filter (where has_purchase and age_days < 365) as n_purchase_days_365d,
        coalesce(sum(n_purchase_invoices) filter (where age_days < 365), 0) as n_invoices_365d,
        coalesce(
            {{ dbt.datediff(
                'min(invoice_date) filter (where has_purchase and age_days < 365)',
                'max(invoice_date) filter (where has_purchase and age_days < 365)',
                'day'
            ) }},
            0
        ) as purchase_span_365d,
        coalesce(sum(purchased_items) filter (where age_days < 365), 0) as n_items_365d,
        coalesce(sum(returned_items) filter (where age_days < 365), 0) as n_returned_items_365d,
        -- each purchase counts half as much every `revenue_half_life_days`: recent spend weighs more. The weight
        -- in floating point: numeric power() took most of the statement's time, for digits far below the 4 kept
        sum(
            purchase_revenue
            * {{ to_numeric(
                'power(0.5, age_days / cast(' ~ var('revenue_half_life_days') ~ ' as ' ~ dbt.type_float() ~ '))'
            ) }}
        ) as decayed_revenue
    from customer_days_until_as_of
    -- the customer first: PostgreSQL sorts the customer-days on these keys, and with the as-of date first every
    -- comparison of one date's rows went on to the second key (0.3-0.4 s of the statement's 2.9 s for a date at
    -- 10 million lines)
    group by customer_id, as_of_date

),

repeat_purchase_days as (

    -- BG/NBD's repeat transactions: the purchase days after the first, and what they brought
    select
        per_customer.as_of_date,
        per_customer.customer_id,
        per_customer.n_purchase_days - 1 as n_repeat_days,
        per_customer.gross_revenue - first_days.purchase_revenue as repeat_revenue
    from per_customer
    -- a customer's first purchase day is the same at every as-of date that knows the customer
    inner join {{ ref('int_customer_days') }} as first_days
        on
            per_customer.customer_id = first_days.customer_id
            and per_customer.first_purchase_date = first_days.invoice_date

),

features as (

    select
        per_customer.customer_id,
        per_customer.as_of_date,
        per_customer.gross_revenue,
        per_customer.returned_value,
        per_customer.gross_revenue - per_customer.returned_value as net_revenue,
        {{ safe_divide('per_customer.gross_revenue', 'per_customer.n_invoices') }} as avg_ticket,
        {{ safe_divide('per_customer.gross_revenue', 'per_customer.n_items') }} as avg_unit_price,
        per_customer.first_purchase_date,
        per_customer.last_purchase_date,
        {{ dbt.datediff('per_customer.last_purchase_date', 'per_customer.as_of_date', 'day') }}
            as recency_days,
        {{ dbt.datediff('per_customer.first_purchase_date', 'per_customer.as_of_date', 'day') }}
            as tenure_days,
        {{ safe_divide(
            dbt.datediff('per_customer.first_purchase_date', 'per_customer.last_purchase_date', 'day'),
            'per_customer.n_purchase_days - 1'
        ) }} as avg_days_between_purchases,
        per_customer.n_invoices,
        per_customer.n_purchase_days,
        -- tenure counts at least one day, so a floor of 0 (the var) cannot divide by zero
        30.0 * per_customer.n_invoices / greatest(
            {{ dbt.datediff('per_customer.first_purchase_date', 'per_customer.as_of_date', 'day') }},
            {{ var('min_frequency_tenure_days') }},
            1
        ) as purchase_frequency,
        per_customer.n_items,
        per_customer.n_lines,
        coalesce(products_until_as_of.n_distinct_products, 0) as n_distinct_products,
        {{ safe_divide('per_customer.n_items', 'per_customer.n_invoices') }} as avg_basket_size,
        per_customer.avg_unique_basket_size,
        per_customer.n_returned_items,
        per_customer.n_return_invoices,
        {{ safe_divide('per_customer.n_returned_items', 'per_customer.n_items') }} as return_rate,
        per_customer.gross_revenue_90d,
        per_customer.gross_revenue_365d,
        per_customer.returned_value_90d,
        per_customer.returned_value_365d,
        per_customer.n_purchase_days_90d,
        per_customer.n_purchase_days_365d,
        per_customer.n_invoices_365d,
        per_customer.purchase_span_365d,
        per_customer.decayed_revenue,
        coalesce(
            {{ safe_divide('per_customer.n_returned_items_365d', 'per_customer.n_items_365d') }}, 0
        ) as return_rate_365d,
        per_customer.n_purchase_days - 1 as clv_frequency,
        {{ dbt.datediff('per_customer.first_purchase_date', 'per_customer.last_purchase_date', 'day') }}
            as clv_recency,
        {{ dbt.datediff('per_customer.first_purchase_date', 'per_customer.as_of_date', 'day') }}
            as clv_t,
        coalesce({{ safe_divide('repeat_purchase_days.repeat_revenue', 'repeat_purchase_days.n_repeat_days') }}, 0)
            as clv_monetary,
        country_ranked.country as main_country
    from per_customer
    left join products_until_as_of
        on
            per_customer.as_of_date = products_until_as_of.as_of_date
            and per_customer.customer_id = products_until_as_of.customer_id
    left join repeat_purchase_days
        on
            per_customer.as_of_date = repeat_purchase_days.as_of_date
            and per_customer.customer_id = repeat_purchase_days.customer_id
    left join country_ranked
        on
            per_customer.as_of_date = country_ranked.as_of_date
            and per_customer.customer_id = country_ranked.customer_id
            and country_ranked.country_rank = 1
    -- customers whose only lines (so far) are returns have nothing to segment on
    where per_customer.n_invoices > 0

)

select
    cast(customer_id as bigint) as customer_id,
    cast(as_of_date as date) as as_of_date,
    cast(gross_revenue as numeric(18, 4)) as gross_revenue,
    cast(returned_value as numeric(18, 4)) as returned_value,
    cast(net_revenue as numeric(18, 4)) as net_revenue,
    cast(avg_ticket as numeric(14, 4)) as avg_ticket,
    cast(avg_unit_price as numeric(14, 4)) as avg_unit_price,
    cast(first_purchase_date as date) as first_purchase_date,
    cast(last_purchase_date as date) as last_purchase_date,
    cast(recency_days as integer) as recency_days,
    cast(tenure_days as integer) as tenure_days,
    cast(avg_days_between_purchases as numeric(10, 2)) as avg_days_between_purchases,
    cast(n_invoices as integer) as n_invoices,
    cast(n_purchase_days as integer) as n_purchase_days,
    cast(purchase_frequency as numeric(10, 4)) as purchase_frequency,
    cast(n_items as bigint) as n_items,
    cast(n_lines as integer) as n_lines,
    cast(n_distinct_products as integer) as n_distinct_products,
    cast(avg_basket_size as numeric(14, 4)) as avg_basket_size,
    cast(avg_unique_basket_size as numeric(14, 4)) as avg_unique_basket_size,
    cast(n_returned_items as bigint) as n_returned_items,
    cast(n_return_invoices as integer) as n_return_invoices,
    cast(return_rate as numeric(12, 6)) as return_rate,
    cast(gross_revenue_90d as numeric(18, 4)) as gross_revenue_90d,
    cast(gross_revenue_365d as numeric(18, 4)) as gross_revenue_365d,
    cast(returned_value_90d as numeric(18, 4)) as returned_value_90d,
    cast(returned_value_365d as numeric(18, 4)) as returned_value_365d,
    cast(n_purchase_days_90d as integer) as n_purchase_days_90d,
    cast(n_purchase_days_365d as integer) as n_purchase_days_365d,
    cast(n_invoices_365d as integer) as n_invoices_365d,
    cast(purchase_span_365d as integer) as purchase_span_365d,
    cast(return_rate_365d as numeric(12, 6)) as return_rate_365d,
    cast(decayed_revenue as numeric(18, 4)) as decayed_revenue,
    cast(clv_frequency as integer) as clv_frequency,
    cast(clv_recency as integer) as clv_recency,
    cast(clv_t as integer) as clv_t,
    cast(clv_monetary as numeric(14, 4)) as clv_monetary,
    cast(main_country as {{ type_text() }}) as main_country
from features
