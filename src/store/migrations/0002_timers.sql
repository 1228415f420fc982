CREATE TABLE `timers` (
	`owner` text NOT NULL,
	`key` text NOT NULL,
	`timer_id` text NOT NULL,
	`partition` integer NOT NULL,
	`due_ms` integer NOT NULL,
	PRIMARY KEY(`owner`, `key`, `timer_id`)
);
--> statement-breakpoint
CREATE INDEX `timers_due` ON `timers` (`owner`,`partition`,`due_ms`);