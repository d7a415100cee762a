-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    l.realm_id,
    l.journal_entry_id,
    l.line_index,
    l.line_id,
    l.line_num,
    l.detail_type,
    l.description,
    l.amount,
    l.posting_type,
    l.account_id,
    l.account_name,
    l.entity_type,
    l.entity_id,
    l.class_id,
    l.department_id
from {{ source('qbo', 'journal_entry_lines') }} as l
join {{ source('qbo', 'journal_entries') }} as p
  on p.realm_id = l.realm_id and p.id = l.journal_entry_id
where p.deleted_at is null
