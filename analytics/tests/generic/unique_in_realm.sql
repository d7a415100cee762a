{#- No two rows share the columns of `combination` (a key such as realm_id and an id).
    dbt's own `unique` test takes one column; every key here has two or three. -#}
{% test unique_in_realm(model, combination) %}
select {{ combination | join(', ') }}, count(*) as copies
from {{ model }}
group by {{ combination | join(', ') }}
having count(*) > 1
{% endtest %}
