-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    l.realm_id,
    l.estimate_id,
    l.line_index,
    l.line_id,
    l.line_num,
    l.detail_type,
    l.description,
    l.amount,
    l.item_id,
    l.item_name,
    l.qty,
    l.unit_price,
    l.tax_code,
    l.service_date,
    l.class_id,
    l.discount_percent,
    l.discount_percent_based,
    l.discount_account_id
from {{ source('qbo', 'estimate_lines') }} as l
join {{ source('qbo', 'estimates') }} as p
  on p.realm_id = l.realm_id and p.id = l.estimate_id
where p.deleted_at is null
