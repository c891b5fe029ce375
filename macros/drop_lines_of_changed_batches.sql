{#-
    Pre-hook of the batch-by-batch line tables: before new batches are added, remove the lines of batches that are
    gone or were loaded again (--replace keeps the batch id but gives it a new loaded_at), so that a replaced
    file's lines are never counted twice, even when the new file has no line for a date the old one had.
-#}
{% macro drop_lines_of_changed_batches() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} as built
        where not exists (
            select 1
            from {{ source('online_retail', 'load_batches') }} as batches
            where batches.batch_id = built.batch_id and batches.loaded_at = built.batch_loaded_at
        )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
