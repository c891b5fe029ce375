{{
    config(
        materialized=materialization_by_load(),
        unique_key=['customer_id', 'first_bought_on'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_id', 'first_bought_on'], 'unique': true},
            {'columns': ['first_bought_on']},
            {'columns': ['lines_loaded_through']},
        ],
        post_hook=[
            "{{ delete_days_without_new_products() }}",
            "{{ analyze_table() }}",
        ],
    )
}}

{#-
    One row per customer and day on which the customer first bought some product: how many. Every as-of date sums
    these days (n_distinct_products) instead of counting every customer-product pair up to it, ten times as many
    rows (at 10 million lines that count was the largest part of a new day's feature statement).

    Built by invoice date: a pair's first day (int_customer_products) only moves to a date that loads since the
    last build changed, or away from a later day (an earlier line came) or from such a date (its line gone with a
    file loaded again). So no day before the earliest changed date changes: the days from it on are counted again
    (a new day's pairs only, when a day is appended), and a day left with no first purchase is written with 0 and
    removed by the post-hook.
-#}
{%- set changed_dates = changed_invoice_dates(ref('int_invoice_lines__loaded_dates')) %}
{%- set earliest_changed = changed_dates | min if changed_dates else none %}

with first_purchases as (

    select
        customer_id,
        first_bought_on
    from {{ ref('int_customer_products') }}
    {%- if is_incremental() %}
        where {{ on_or_after_date('first_bought_on', earliest_changed) }}
    {%- endif %}

),

new_products_per_day as (

    select
        customer_id,
        first_bought_on,
        count(*) as n_new_products
    from first_purchases
    group by customer_id, first_bought_on

),

{%- if is_incremental() %}

days_no_longer_first as (

    select
        held.customer_id,
        held.first_bought_on,
        0 as n_new_products
    from {{ this }} as held
    where
        {{ on_or_after_date('held.first_bought_on', earliest_changed) }}
        and not exists (
            select 1
            from new_products_per_day
            where
                new_products_per_day.customer_id = held.customer_id
                and new_products_per_day.first_bought_on = held.first_bought_on
        )

),

{%- endif %}

customer_days as (

    select * from new_products_per_day
    {%- if is_incremental() %}
        union all
        -- 0 marks a day that is no longer any product's first: the post-hook removes it
        select * from days_no_longer_first
    {%- endif %}

)

select
    cast(customer_id as bigint) as customer_id,
    cast(first_bought_on as date) as first_bought_on,
    cast(n_new_products as integer) as n_new_products,
    {{ lines_loaded_through(ref('int_invoice_lines__loaded_dates')) }} as lines_loaded_through
from customer_days
