-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    l.realm_id,
    l.deposit_id,
    l.line_index,
    l.line_id,
    l.line_num,
    l.detail_type,
    l.description,
    l.amount,
    l.account_id,
    l.account_name,
    l.entity_type,
    l.entity_id,
    l.payment_method_id,
    l.check_num,
    l.class_id
from {{ source('qbo', 'deposit_lines') }} as l
join {{ source('qbo', 'deposits') }} as p
  on p.realm_id = l.realm_id and p.id = l.deposit_id
where p.deleted_at is null
