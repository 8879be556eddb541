// firehose-sim live dashboard: the simulator pushes each new state of the page as a
// Server-Sent Event (`frame`, and `end` once the run is judged); this swaps it in.
// No polling, no framework.
const live = document.getElementById("live");
const status = document.getElementById("status");
const events = new EventSource("events");

function show(html, text) {
  live.innerHTML = html;
  status.textContent = text;
}

events.addEventListener("frame", (e) => show(e.data, "live"));
events.addEventListener("end", (e) => {
  show(e.data, "run ended");
  events.close();
});
events.onerror = () => {
  if (events.readyState !== EventSource.CLOSED) status.textContent = "reconnecting…";
};
