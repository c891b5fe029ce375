{#-
    One row per load batch and cleaning rule: how many lines and how much revenue each rule removed.
    Every line read lands in exactly one row (kept, removed by its first failing rule, rejected at load, or a
    duplicate of a line already loaded), so per batch the lines add up to the lines read from the file.
-#}
with rules as (

    select
        rule_order,
        rule,
        rule_description
    from (
        values
        (0, 'kept', 'passes every rule; feeds customer features'),
        (1, 'guest_line', 'no customer id (guest checkout); not turned into made-up customers'),
        (2, 'excluded_customer', 'customer listed in the excluded_customer_ids var'),
        (3, 'excluded_country', 'country listed in the excluded_countries seed'),
        (4, 'non_product_code', 'stock code listed in the excluded_stock_codes seed'),
        (5, 'unit_price_below_minimum', 'unit price below the min_unit_price var'),
        (6, 'rejected_at_load', 'line the loader could not parse (raw.rejected_invoice_lines)'),
        (7, 'duplicate_line', 'line already loaded from another file or sheet; not loaded again')
    ) as rule_list (rule_order, rule, rule_description)

),

batches as (

    select
        batch_id,
        source_file,
        lines_duplicate
    from {{ ref('stg_online_retail__load_batches') }}

),

checked_lines as (

    -- counted batch by batch as they are loaded, not over every line at each build
    select
        batch_id,
        rule,
        n_lines,
        line_revenue,
        purchase_revenue
    from {{ ref('int_invoice_lines__rule_counts') }}

),

rejected_lines as (

    select
        batch_id,
        'rejected_at_load' as rule,
        count(*) as n_lines,
        null::numeric as line_revenue,
        null::numeric as purchase_revenue
    from {{ ref('stg_online_retail__rejected_invoice_lines') }}
    group by batch_id

),

duplicate_lines as (

    select
        batch_id,
        'duplicate_line' as rule,
        lines_duplicate as n_lines,
        null::numeric as line_revenue,
        null::numeric as purchase_revenue
    from batches
    where lines_duplicate > 0

),

counted as (

    select * from checked_lines
    union all
    select * from rejected_lines
    union all
    select * from duplicate_lines

),

report as (

    select
        batches.batch_id,
        batches.source_file,
        rules.rule_order,
        rules.rule,
        rules.rule_description,
        coalesce(counted.n_lines, 0) as n_lines,
        coalesce(counted.line_revenue, 0) as line_revenue,
        coalesce(counted.purchase_revenue, 0) as purchase_revenue,
        {{ safe_divide(
            'coalesce(counted.n_lines, 0)',
            'sum(coalesce(counted.n_lines, 0)) over (partition by batches.batch_id)'
        ) }} as share_of_lines
    from batches
    cross join rules
    left join counted
        on batches.batch_id = counted.batch_id and rules.rule = counted.rule

)

select
    batch_id::bigint as batch_id,
    source_file::{{ type_text() }} as source_file,
    rule_order::integer as rule_order,
    rule::{{ type_text() }} as rule,
    rule_description::{{ type_text() }} as rule_description,
    n_lines::bigint as n_lines,
    line_revenue::numeric(18, 4) as line_revenue,
    purchase_revenue::numeric(18, 4) as purchase_revenue,
    share_of_lines::numeric(8, 6) as share_of_lines
from report
