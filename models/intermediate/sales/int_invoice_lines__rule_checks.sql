{#-
    Every staged line with the first cleaning rule that removes it (null when it is kept).
    Rules are tried in a fixed order so that each removed line is counted by exactly one rule.
-#}
with staged_lines as (

    select * from {{ ref('stg_online_retail__invoice_lines') }}

),

excluded_countries as (

    select country from {{ ref('excluded_countries') }}

),

checked as (

    select
        staged_lines.*,
        case
            when staged_lines.is_guest then 'guest_line'
            when staged_lines.customer_id in ({{ var('excluded_customer_ids') | join(', ') }})
                then 'excluded_customer'
            when excluded_countries.country is not null then 'excluded_country'
            when staged_lines.is_non_product then 'non_product_code'
            when staged_lines.unit_price < {{ var('min_unit_price') }} then 'unit_price_below_minimum'
        end as removed_by_rule
    from staged_lines
    left join excluded_countries
        on staged_lines.country = excluded_countries.country

)

select * from checked
