-- `gatehouse users list` pages through accounts oldest first (`--after ID`): the next
-- page starts where the last ended in this index, however many accounts there are,
-- instead of sorting them all for every page.
CREATE INDEX accounts_created_at ON accounts (created_at, id);
