fn main() {
    println!("pushlab-loadgen: not built yet");
}
