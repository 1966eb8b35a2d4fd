"""Meeting invitations between the plan's participants (issue 17, part 4): the organiser
invites, each participant answers (accept, decline, propose another time), the organiser
reschedules or cancels. Events on the plan (docs/decisions/0013-meeting-invitations.md);
served as Appointment and AppointmentResponse."""
