CREATE TABLE `applied_events` (
	`owner` text NOT NULL,
	`key` text NOT NULL,
	`event_id` text NOT NULL,
	`fingerprint` text NOT NULL,
	`outcome` text NOT NULL,
	PRIMARY KEY(`owner`, `key`, `event_id`)
);
--> statement-breakpoint
CREATE TABLE `outbox` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`owner` text NOT NULL,
	`partition` integer NOT NULL,
	`records` blob NOT NULL
);
--> statement-breakpoint
CREATE TABLE `progress` (
	`owner` text NOT NULL,
	`topic` text NOT NULL,
	`partition` integer NOT NULL,
	`next_offset` integer NOT NULL,
	PRIMARY KEY(`owner`, `topic`, `partition`)
);
--> statement-breakpoint
CREATE TABLE `table_rows` (
	`owner` text NOT NULL,
	`key` text NOT NULL,
	`value` blob NOT NULL,
	`version` integer NOT NULL,
	PRIMARY KEY(`owner`, `key`)
);
