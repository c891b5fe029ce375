{#-
    Pre-hook of the batch-by-batch line tables: before new batches are added, remove the lines of batches that are
    gone or were loaded again (--replace keeps the batch id but gives it a new loaded_at), so that a replaced
    file's lines are never counted twice, even when the new file has no line for a date the old one had.
    The batch versions to remove are those `loaded_dates` (int_invoice_lines__loaded_dates, built before these
    tables, logs every version they ever held) holds and raw.load_batches no longer does, queried first and
    written into the statement, so that it reads their lines through the index on batch_id and no other line.
-#}
{% macro drop_lines_of_changed_batches(loaded_dates) -%}
    {%- if execute and is_incremental() -%}
        {%- set query -%}
            select distinct
                logged.batch_id,
                cast(logged.batch_loaded_at as text) as batch_loaded_at
            from {{ loaded_dates }} as logged
            where not exists (
                select 1
                from {{ source('online_retail', 'load_batches') }} as batches
                where batches.batch_id = logged.batch_id and batches.loaded_at = logged.batch_loaded_at
            )
            order by 1, 2
        {%- endset -%}
        {%- set gone = run_query(query) -%}
    {%- endif -%}
    {%- if execute and is_incremental() and gone.rows | length > 0 -%}
        delete from {{ this }} as built
        where
            {%- for row in gone.rows %}
                {{ 'or ' if not loop.first }}(built.batch_id = {{ row[0] | int }} and built.batch_loaded_at = cast('{{ row[1] }}' as timestamptz))
            {%- endfor %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
