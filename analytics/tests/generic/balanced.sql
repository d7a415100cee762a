{#- Debits equal credits within each group (a transaction), to the cent. -#}
{% test balanced(model, column_name, group_by) %}
select {{ group_by | join(', ') }}, sum({{ column_name }}) as imbalance
from {{ model }}
group by {{ group_by | join(', ') }}
having sum({{ column_name }}) <> 0
{% endtest %}
