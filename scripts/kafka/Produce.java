// Produces one record with the official Java client, the way any other trusted producer
// of Depositaja's input topics would (see proto/depositaja/v1/events.proto).
//
//   java -cp "$(scripts/kafka.sh classpath)" scripts/kafka/Produce.java <bootstrap> <topic> <key> <value.bin
//
// Prints "<partition> <offset>" of the stored record on stdout.
//
// Why not ConsoleProducer: it reads text lines, so it cannot send arbitrary bytes such
// as a protobuf Deposit. Why no partition is given: the point is to let the Java
// client's default partitioner choose it, so tests can check that ours (murmur2 in
// src/log/murmur2.ts) puts a wallet's records in the same partition.
//
// A single source file (Java 11+ runs it directly), so no build step is needed.

import java.nio.charset.StandardCharsets;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class Produce {
  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: Produce <bootstrap> <topic> <key>   (value: all of stdin, raw bytes)");
      System.exit(2);
    }
    // slf4j-simple reads its settings once, when the first logger is made: set the level
    // before the producer exists, or the client's INFO config dump floods stderr.
    if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
      System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    }
    String bootstrap = args[0];
    String topic = args[1];
    // The key as the wallet id's UTF-8 bytes, exactly what the partitioner hashes.
    byte[] key = args[2].getBytes(StandardCharsets.UTF_8);
    // Raw bytes, not text: a protobuf value may hold any byte, including newlines.
    byte[] value = System.in.readAllBytes();

    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ProducerConfig.CLIENT_ID_CONFIG, "depositaja-test-produce");
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    // The same guarantees as our own producer (src/log/kafka.ts): stored on every
    // in-sync replica, and an internal retry never writes the record twice.
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    // Fail within a bounded time instead of hanging a test when the broker is gone.
    // The client insists delivery.timeout.ms >= linger.ms + request.timeout.ms.
    props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
    props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");

    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
      // No partition argument: the default partitioner hashes the key (murmur2).
      RecordMetadata meta = producer.send(new ProducerRecord<>(topic, key, value)).get();
      System.out.println(meta.partition() + " " + meta.offset());
    }
  }
}
