-- Tables in the target's control schema. What the next dbt build computes, written by `insiders` just before it runs dbt and emptied after. Dates
-- travel through data, not `--vars`: a new var value would make dbt parse the whole project again.
create table if not exists feature_dates (
    as_of_date date primary key
);

create table if not exists current_as_of (
    as_of_date date primary key
);

-- When each as-of date of the feature mart was built: the latest batch's loaded_at then. A run restates its as-of
-- date only when a batch was loaded after that.
create table if not exists feature_builds (
    as_of_date date primary key,
    lines_loaded_through timestamptz
);
