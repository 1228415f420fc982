CREATE TABLE `group_members` (
	`group` text NOT NULL,
	`member_id` text NOT NULL,
	`expires_ms` integer NOT NULL,
	PRIMARY KEY(`group`, `member_id`)
);
--> statement-breakpoint
CREATE TABLE `group_offsets` (
	`group` text NOT NULL,
	`topic` text NOT NULL,
	`partition` integer NOT NULL,
	`offset` integer NOT NULL,
	PRIMARY KEY(`group`, `topic`, `partition`)
);
--> statement-breakpoint
CREATE TABLE `partition_heads` (
	`topic` text NOT NULL,
	`partition` integer NOT NULL,
	`next_offset` integer NOT NULL,
	PRIMARY KEY(`topic`, `partition`)
);
--> statement-breakpoint
CREATE TABLE `records` (
	`topic` text NOT NULL,
	`partition` integer NOT NULL,
	`offset` integer NOT NULL,
	`key` text NOT NULL,
	`value` blob NOT NULL,
	`headers` text,
	`timestamp_ms` integer NOT NULL,
	PRIMARY KEY(`topic`, `partition`, `offset`)
);
--> statement-breakpoint
CREATE TABLE `topics` (
	`name` text PRIMARY KEY NOT NULL,
	`partitions` integer NOT NULL,
	`compacted` integer NOT NULL
);
