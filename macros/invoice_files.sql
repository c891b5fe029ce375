{#-
    Where the staging layer reads the loaded lines, per engine.

    PostgreSQL: `insiders load` has typed, deduplicated and accounted for every line (raw.invoice_lines,
    raw.load_batches, raw.rejected_invoice_lines); staging reads those tables.

    Spark: there is no loader. The invoice files are read where they lie, through an external table over them
    (source online_retail_files.invoice_lines, registered at the start of every run by register_invoice_files()),
    and the loader's rules are applied here in SQL: the same column mapping (var invoice_file_columns), one date
    format per file chosen among the same candidates (var invoice_date_formats), the same refusals and reasons, the
    same natural key and occurrence, the same accounting (read = loaded + duplicate + rejected). A file is a batch,
    numbered in the order of the files' paths (the order `insiders load` would take them in); the lines a later
    file repeats are its duplicates. A backtest's scratch build reads the lines invoiced up to its cutoff only
    (invoice_lines_through).
-#}

{#- The invoice file(s) Spark reads: the invoice_path var, else $INSIDERS_INVOICE_PATH (a file, a directory or a
    glob), resolved from the project directory. -#}
{% macro invoice_path() -%}
    {%- set path = var('invoice_path', none) or env_var('INSIDERS_INVOICE_PATH', '') -%}
    {{- return(path | trim) -}}
{%- endmacro %}

{#- A backtest's scratch build (`insiders backtest --engine spark`): only the lines invoiced up to this date are
    read, the invoice_lines_through var, else $INSIDERS_INVOICE_LINES_THROUGH; empty: every line. -#}
{% macro invoice_lines_through() -%}
    {%- set through = var('invoice_lines_through', none) or env_var('INSIDERS_INVOICE_LINES_THROUGH', '') -%}
    {{- return(through | string | trim) -}}
{%- endmacro %}

{#- parquet or csv: the invoice_format var, else the path's extension. -#}
{% macro invoice_format() -%}
    {%- set given = var('invoice_format', none) -%}
    {%- if given -%}
        {{- return(given | lower) -}}
    {%- endif -%}
    {{- return('csv' if '.csv' in invoice_path() | lower else 'parquet') -}}
{%- endmacro %}

{#- on-run-start: the external table over the invoice files (Spark); nothing on PostgreSQL. -#}
{% macro register_invoice_files() -%}
    {{ return(adapter.dispatch('register_invoice_files')()) }}
{%- endmacro %}

{% macro default__register_invoice_files() -%}
{%- endmacro %}

{% macro spark__register_invoice_files() -%}
    {%- set relation = source('online_retail_files', 'invoice_lines') -%}
    {%- set path = invoice_path() -%}
    {%- if not path -%}
        {{ exceptions.raise_compiler_error(
            "Spark reads the invoice files where they lie: give their path (insiders dbt --engine spark --input FILE, "
            "the invoice_path var or INSIDERS_INVOICE_PATH)") }}
    {%- endif -%}
    {%- set format = invoice_format() -%}
    {#- a session runs one statement at a time -#}
    {%- do run_query('create schema if not exists ' ~ relation.schema) -%}
    {%- do run_query('drop table if exists ' ~ relation) -%}
    {%- set create_table -%}
    create table {{ relation }}
    using {{ format }}
    options (
        path '{{ path | replace("'", "\\'") }}'
        {%- if format == 'csv' %},
        header 'true',
        -- every field as text, as the loader reads a CSV; one partition per file keeps its lines in order
        inferSchema 'false',
        multiLine 'true',
        encoding '{{ var("invoice_csv_encoding", "UTF-8") }}'
        {%- endif %}
    )
    {%- endset -%}
    {%- do run_query(create_table) -%}
    select 1
{%- endmacro %}

{% macro invoice_lines_source() -%}
    {{ return(adapter.dispatch('invoice_lines_source')()) }}
{%- endmacro %}

{% macro default__invoice_lines_source() -%}
    select * from {{ source('online_retail', 'invoice_lines') }}
{%- endmacro %}

{% macro spark__invoice_lines_source() -%}
    {{ invoice_file_lines() }}
    select
        batch_id, source_sheet, source_line, invoice_no, stock_code, description, quantity, invoiced_at,
        unit_price, customer_id, country, line_occurrence
    from file_lines
    where line_status = 'loaded'
{%- endmacro %}

{% macro load_batches_source() -%}
    {{ return(adapter.dispatch('load_batches_source')()) }}
{%- endmacro %}

{% macro default__load_batches_source() -%}
    select * from {{ source('online_retail', 'load_batches') }}
{%- endmacro %}

{% macro spark__load_batches_source() -%}
    {{ invoice_file_lines() }}
    select
        file_batches.batch_id,
        file_batches.source_file,
        file_batches.source_path,
        -- the files are not read byte by byte here: no content hash
        cast(null as string) as file_sha256,
        '' as sheet_selection,
        '{{ invoice_format() }}' as file_format,
        '{{ invoice_file_columns().layout }}' as column_layout,
        {%- if invoice_format() == 'csv' %}
        '{{ var("invoice_csv_encoding", "UTF-8") | lower }}' as text_encoding,
        {%- else %}
        cast(null as string) as text_encoding,
        {%- endif %}
        max(file_lines.date_format) as date_format,
        count(*) as lines_read,
        count_if(file_lines.line_status = 'loaded') as lines_loaded,
        count_if(file_lines.line_status = 'duplicate') as lines_duplicate,
        count_if(file_lines.line_status = 'rejected') as lines_rejected,
        file_batches.modified_at as started_at,
        -- a file's modification time: read again when it changes, as a batch loaded again
        file_batches.modified_at as loaded_at
    from file_batches
    inner join file_lines on file_batches.batch_id = file_lines.batch_id
    group by file_batches.batch_id, file_batches.source_file, file_batches.source_path, file_batches.modified_at
{%- endmacro %}

{% macro rejected_lines_source() -%}
    {{ return(adapter.dispatch('rejected_lines_source')()) }}
{%- endmacro %}

{% macro default__rejected_lines_source() -%}
    select * from {{ source('online_retail', 'rejected_invoice_lines') }}
{%- endmacro %}

{% macro spark__rejected_lines_source() -%}
    {{ invoice_file_lines() }}
    select
        batch_id,
        source_sheet,
        source_line,
        raw_text,
        reason
    from file_lines
    where line_status = 'rejected'
{%- endmacro %}

{#-
    The invoice file's columns for the loader's canonical names, and the layout they follow: read from the
    external table when dbt executes (at parse time, the canonical names stand in).
-#}
{% macro invoice_file_columns() -%}
    {%- set aliases = var('invoice_file_columns') -%}
    {%- set found = {} -%}
    {%- set types = {} -%}
    {%- if execute -%}
        {%- set relation = source('online_retail_files', 'invoice_lines') -%}
        {%- set columns = adapter.get_columns_in_relation(relation) -%}
        {%- for canonical, spellings in aliases.items() -%}
            {%- for column in columns if canonical not in found -%}
                {%- set normalized = column.name | lower | list | select('in', 'abcdefghijklmnopqrstuvwxyz0123456789') | join -%}
                {%- if normalized in spellings -%}
                    {%- do found.update({canonical: adapter.quote(column.name)}) -%}
                    {%- do types.update({canonical: column.dtype | lower}) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- set missing = aliases.keys() | reject('in', found) | list -%}
        {%- if missing -%}
            {{ exceptions.raise_compiler_error(
                invoice_path() ~ ": missing columns " ~ missing | join(', ') ~ "; found columns: "
                ~ columns | map(attribute='name') | join(', ')
                ~ ". Expected the UCI Online Retail layout or Online Retail II.") }}
        {%- endif -%}
        {%- set layout = 'online_retail_ii' if found['invoice_no'] | lower | replace('`', '') == 'invoice'
            else 'uci_online_retail' -%}
    {%- else -%}
        {%- for canonical in aliases -%}
            {%- do found.update({canonical: canonical}) -%}
            {%- do types.update({canonical: 'string'}) -%}
        {%- endfor -%}
        {%- set layout = 'uci_online_retail' -%}
    {%- endif -%}
    {{ return({'columns': found, 'types': types, 'layout': layout}) }}
{%- endmacro %}

{#- A value as the loader quotes it in a reason: the first 40 characters between quotes ('None' when missing). -#}
{% macro shown_value(expression) -%}
    concat('''', left(coalesce(cast({{ expression }} as string), 'None'), 40), '''')
{%- endmacro %}

{#- A whole number as the loader accepts it: finite, integral, within +-limit. -#}
{% macro is_whole_number(expression, limit) -%}
    coalesce({{ expression }} % 1 = 0 and abs({{ expression }}) <= {{ limit }}, false)
{%- endmacro %}

{#-
    `with` and the CTEs of every line of the invoice files (Spark): file_batches (one row per file) and
    file_lines (one row per line read: its batch, line number, typed fields, line_status loaded, duplicate or
    rejected, and the reasons of a refused line). The callers add their final select.
-#}
{% macro invoice_file_lines() -%}
    {%- set file = invoice_file_columns() -%}
    {%- set col = file.columns -%}
    {%- set native_date = file.types['invoice_date'].startswith('timestamp') or file.types['invoice_date'] == 'date' -%}
    {%- set formats = var('invoice_date_formats') -%}
with file_rows as (

    select
        _metadata.file_path as source_path,
        _metadata.file_name as source_file,
        _metadata.file_modification_time as modified_at,
        {%- if invoice_format() == 'parquet' %}
        _metadata.row_index + 1 as source_line,
        {%- else %}
        -- the header is line 1; a record is counted as one line (one partition per file keeps their order)
        row_number() over (partition by _metadata.file_path order by monotonically_increasing_id()) + 1
            as source_line,
        {%- endif %}
        struct(*) as raw_fields,
        {%- for canonical, name in col.items() %}
        {{ name }} as file_{{ canonical }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ source('online_retail_files', 'invoice_lines') }}

),

file_batches as (

    select
        row_number() over (order by source_path) as batch_id,
        source_path,
        source_file,
        modified_at
    from (
        select source_path, max(source_file) as source_file, max(modified_at) as modified_at
        from file_rows
        group by source_path
    ) as files

),

{%- if not native_date %}

file_date_texts as (

    select distinct
        source_path,
        trim(file_invoice_date) as date_text
    from file_rows
    where nullif(trim(file_invoice_date), '') is not null

),

file_date_format_candidates as (

    -- the loader's formats in its order of preference, each with the Spark pattern that reads the same texts
    select * from values
    {%- for strptime_format, spark_pattern in formats %}
        ({{ loop.index }}, '{{ strptime_format }}', '{{ spark_pattern | replace("'", "\\'") }}'){{ "," if not loop.last }}
    {%- endfor %}
    as candidates (format_rank, strptime_format, spark_pattern)

),

file_date_formats as (

    -- per file, the format that parses the most distinct date texts (the first in order among equals)
    select source_path, format_rank, strptime_format
    from (
        select
            scores.*,
            row_number() over (partition by scores.source_path order by scores.n_parsed desc, scores.format_rank)
                as preference
        from (
            select
                file_date_texts.source_path,
                candidates.format_rank,
                candidates.strptime_format,
                count({{ parse_invoice_date('file_date_texts.date_text', 'candidates.format_rank', formats) }})
                    as n_parsed
            from file_date_texts
            cross join file_date_format_candidates as candidates
            group by file_date_texts.source_path, candidates.format_rank, candidates.strptime_format
        ) as scores
        where scores.n_parsed > 0
    ) as ranked
    where preference = 1

),

file_dates as (

    -- each distinct text parsed once, with its file's format, then looked up by the lines
    select
        file_date_texts.source_path,
        file_date_texts.date_text,
        file_date_formats.strptime_format,
        {{ parse_invoice_date('file_date_texts.date_text', 'file_date_formats.format_rank', formats) }}
            as invoiced_at
    from file_date_texts
    left join file_date_formats on file_date_texts.source_path = file_date_formats.source_path

),
{%- endif %}

file_typed_rows as (

    select
        file_batches.batch_id,
        '' as source_sheet,
        file_rows.source_line,
        file_rows.raw_fields,
        nullif(trim(cast(file_rows.file_invoice_no as string)), '') as invoice_no,
        nullif(trim(cast(file_rows.file_stock_code as string)), '') as stock_code,
        nullif(trim(cast(file_rows.file_description as string)), '') as description,
        try_cast(trim(cast(file_rows.file_quantity as string)) as double) as quantity_number,
        try_cast(trim(cast(file_rows.file_unit_price as string)) as double) as unit_price_number,
        -- a missing customer (empty, or NaN in a numeric column) is a guest, not a refusal
        nullif(nullif(trim(cast(file_rows.file_customer_id as string)), ''), 'NaN') as customer_text,
        {%- if native_date %}
        date_trunc('second', cast(file_rows.file_invoice_date as timestamp)) as invoiced_at,
        cast(null as string) as date_format,
        {%- else %}
        file_dates.invoiced_at,
        file_dates.strptime_format as date_format,
        {%- endif %}
        nullif(trim(cast(file_rows.file_country as string)), '') as country,
        file_rows.file_quantity,
        file_rows.file_unit_price,
        file_rows.file_customer_id,
        file_rows.file_invoice_date
    from file_rows
    inner join file_batches on file_rows.source_path = file_batches.source_path
    {%- if not native_date %}
    left join file_dates
        on
            file_rows.source_path = file_dates.source_path
            and trim(file_rows.file_invoice_date) = file_dates.date_text
    {%- endif %}

),

file_checked_rows as (

    select
        file_typed_rows.*,
        try_cast(customer_text as double) as customer_number,
        -- the loader's refusals, in its order and words, joined by "; "
        nullif(concat_ws('; ',
            case when invoice_no is null then 'missing invoice number' end,
            case when stock_code is null then 'missing stock code' end,
            case when not {{ is_whole_number('quantity_number', 2147483647) }}
                then concat('quantity ', {{ shown_value('file_quantity') }}, ' is not an integer') end,
            case when not coalesce(not isnan(unit_price_number) and abs(unit_price_number) < cast('Infinity' as double), false)
                then concat('unit price ', {{ shown_value('file_unit_price') }}, ' is not a number') end,
            case when customer_text is not null
                    and not {{ is_whole_number('try_cast(customer_text as double)', 9223372036854774784) }}
                then concat('customer id ', {{ shown_value('file_customer_id') }}, ' is not an integer') end,
            case when invoiced_at is null
                then concat('invoice date ', {{ shown_value('file_invoice_date') }},
                    {%- if native_date %} ' is not a date'
                    {%- else %} coalesce(' does not match ' || date_format, ' is not a date'){% endif %}) end
        ), '') as reason
    from file_typed_rows
    {%- if invoice_lines_through() %}
    -- a backtest's cutoff: the lines invoiced after it are not read, as PostgreSQL's scratch database never holds
    -- them, so that the refusals, the occurrences, the duplicates and the accounting are those of the lines held
    -- (a line with no date cannot be placed before the cutoff); each file's date format is still chosen over the
    -- whole file, as the loader chose it
    where cast(invoiced_at as date) <= date'{{ invoice_lines_through() }}'
    {%- endif %}

),

file_numbered_lines as (

    select
        batch_id,
        source_sheet,
        source_line,
        invoice_no,
        stock_code,
        description,
        cast(quantity_number as int) as quantity,
        invoiced_at,
        cast(unit_price_number as decimal(18, 6)) as unit_price,
        cast(customer_number as bigint) as customer_id,
        country,
        date_format,
        -- the k-th line of its file with this natural key
        row_number() over (
            partition by batch_id, source_sheet, invoice_no, stock_code, quantity_number, unit_price_number,
            invoiced_at, customer_number
            order by source_line
        ) as line_occurrence
    from file_checked_rows
    where reason is null

),

file_lines as (

    select
        numbered.batch_id,
        numbered.source_sheet,
        numbered.source_line,
        numbered.invoice_no,
        numbered.stock_code,
        numbered.description,
        numbered.quantity,
        numbered.invoiced_at,
        numbered.unit_price,
        numbered.customer_id,
        numbered.country,
        numbered.line_occurrence,
        numbered.date_format,
        cast(null as string) as raw_text,
        cast(null as string) as reason,
        -- a key and occurrence an earlier file brought is that earlier file's line
        case
            when row_number() over (
                partition by numbered.invoice_no, numbered.stock_code, numbered.quantity, numbered.unit_price,
                numbered.invoiced_at, numbered.customer_id, numbered.line_occurrence
                order by numbered.batch_id
            ) = 1 then 'loaded'
            else 'duplicate'
        end as line_status
    from file_numbered_lines as numbered

    union all

    select
        batch_id, source_sheet, source_line, invoice_no, stock_code, description,
        cast(null as int) as quantity, invoiced_at, cast(null as decimal(18, 6)) as unit_price,
        cast(null as bigint) as customer_id, country, cast(null as int) as line_occurrence, date_format,
        to_csv(raw_fields) as raw_text, reason, 'rejected' as line_status
    from file_checked_rows
    where reason is not null

)
{%- endmacro %}

{#- The texts of `text` parsed with the candidate format numbered `rank` (literal patterns, one per branch). -#}
{% macro parse_invoice_date(text, rank, formats) -%}
    case {{ rank }}
        {%- for strptime_format, spark_pattern in formats %}
        when {{ loop.index }} then try_to_timestamp({{ text }}, '{{ spark_pattern | replace("'", "\\'") }}')
        {%- endfor %}
    end
{%- endmacro %}
