with source_runs as (

    select * from {{ source('ml', 'model_runs') }}

),

renamed as (

    select
        run_id,
        as_of_date,
        mode as run_mode,
        model_run_id,
        created_at,
        candidate_id,
        n_segments,
        n_customers,
        data_cutoff_date,
        refit_reason,
        insider_definition,
        program as insider_choice,
        limits
    from source_runs

)

select * from renamed
