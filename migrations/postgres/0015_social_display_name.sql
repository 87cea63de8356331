-- Social sign-in (issue 27): the person's name as the provider gave it, for display
-- (/auth/me, GET /auth/social/identities, the account page). Apple sends it only on a
-- person's first sign-in (the form_post's `user` field), so it is kept from then on and
-- only replaced by another name, never by nothing.
ALTER TABLE social_identities ADD COLUMN display_name TEXT;
