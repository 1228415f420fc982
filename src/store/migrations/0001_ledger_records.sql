ALTER TABLE `applied_events` ADD `detail` blob;--> statement-breakpoint
ALTER TABLE `applied_events` ADD `seq` integer;--> statement-breakpoint
ALTER TABLE `applied_events` ADD `recorded_ms` integer;--> statement-breakpoint
CREATE INDEX `applied_events_entries` ON `applied_events` (`owner`,`key`,`seq`) WHERE "applied_events"."seq" IS NOT NULL;