-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    l.realm_id,
    l.payment_id,
    l.line_index,
    l.line_id,
    l.line_num,
    l.detail_type,
    l.description,
    l.amount
from {{ source('qbo', 'payment_lines') }} as l
join {{ source('qbo', 'payments') }} as p
  on p.realm_id = l.realm_id and p.id = l.payment_id
where p.deleted_at is null
