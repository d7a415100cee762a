{#- Days past due today, and QuickBooks' aging buckets for them: the A/R and A/P agings
    share both. -#}
{% macro days_past_due(due_date) -%}
    {{ dbt.datediff(due_date, 'current_date', 'day') }}
{%- endmacro %}

{% macro aging_bucket(due_date) -%}
    case
        when {{ days_past_due(due_date) }} <= 0 then 'Current'
        when {{ days_past_due(due_date) }} <= 30 then '1 - 30'
        when {{ days_past_due(due_date) }} <= 60 then '31 - 60'
        when {{ days_past_due(due_date) }} <= 90 then '61 - 90'
        else '91 and over'
    end
{%- endmacro %}
