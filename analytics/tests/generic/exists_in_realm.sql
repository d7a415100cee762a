{#- Every non-empty `column_name` names a row of `to` (by `field`) in the same realm: a
    relationships test for keys that are only unique within a company. -#}
{% test exists_in_realm(model, column_name, to, field) %}
select child.realm_id, child.{{ column_name }}
from {{ model }} as child
left join {{ to }} as parent
  on parent.realm_id = child.realm_id and parent.{{ field }} = child.{{ column_name }}
where child.{{ column_name }} is not null and parent.{{ field }} is null
{% endtest %}
