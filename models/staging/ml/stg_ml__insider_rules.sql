with source_rules as (

    select * from {{ source('ml', 'insider_rules') }}

),

renamed as (

    select
        as_of_date,
        run_id,
        rule_number,
        rule_text,
        n_customers,
        n_insiders,
        precision as rule_precision,
        recall as rule_recall,
        tree_accuracy
    from source_rules

)

select * from renamed
