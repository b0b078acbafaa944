// The Klaviyo card in Freshdesk's ticket sidebar. Freshdesk hands the app a client once it is
// initialized; the client names the ticket's contact (client.data.get("contact")) and sends our
// "klaviyoCard" request template through Freshworks, which adds the secure card token
// (https://developers.freshworks.com/docs/app-sdk/v3.0/support_ticket/front-end-apps/data-method/,
// https://developers.freshworks.com/docs/app-sdk/v3.0/support_ticket/advanced-interfaces/request-method/).
(function () {
  "use strict";

  var root = document.getElementById("klaviyo-card");

  function say(heading, text) {
    var title = document.createElement("h1");
    var line = document.createElement("p");
    title.textContent = heading;
    line.className = "muted";
    line.textContent = text;
    root.replaceChildren(title, line);
  }

  function show(client) {
    client.data
      .get("contact")
      .then(function (data) {
        var email = data && data.contact && typeof data.contact.email === "string" ? data.contact.email.trim() : "";
        if (!email) {
          say("Klaviyo", "This ticket's contact has no email, so there is no Klaviyo profile to show.");
          return null;
        }
        return client.request.invokeTemplate("klaviyoCard", { context: { email: email } }).then(function (answer) {
          // our server's own escaped template (templates/insight/card_content.html)
          root.innerHTML = answer.response;
        });
      })
      .catch(function (error) {
        var status = error && error.status;
        say(
          "Klaviyo card unavailable",
          status === 401
            ? "The card token in this app's settings is not this workspace's. An admin needs to update it."
            : "The card could not be loaded. Open the ticket again to retry."
        );
      });
  }

  app.initialized().then(function (client) {
    show(client);
    client.events.on("app.activated", function () {
      show(client);
    });
  });
})();
